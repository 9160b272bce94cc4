package tiering

import (
	"context"
	"errors"
	"sync"

	"github.com/google/uuid"

	logsegment "github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/metadata"
)

// ReadAbortedTxns returns the aborted transactions of a remote segment's
// .txnindex object (those whose ABORT marker is in the segment), in marker
// order, for read_committed fetches of tiered data. A segment uploaded
// without one (before transactions) has none. Decoded objects are kept in
// memory (a few bytes per aborted transaction).
func (t *Tier) ReadAbortedTxns(ctx context.Context, p metadata.TopicPartition, segment metadata.SegmentManifest) ([]logsegment.AbortedTxn, error) {
	if t.closed.Load() {
		return nil, ErrClosed
	}
	if entries, ok := t.txnIndexes.get(segment.SegmentID); ok {
		return entries, nil
	}
	key := t.layout.segmentKey(p, segment, suffixTxnIndex)
	data, _, err := t.share(ctx, "txnindex "+uuid.UUID(segment.SegmentID).String(), func(ctx context.Context) ([]byte, error) {
		return t.getAll(ctx, key)
	}, nil)
	switch {
	case errors.Is(err, ErrNotFound):
		data = nil
	case err != nil:
		return nil, err
	}
	entries, err := logsegment.DecodeTxnIndex(data)
	if err != nil {
		return nil, corruptf(key, -1, "aborted transaction index: %v", err)
	}
	for _, e := range entries {
		if e.LastOffset < segment.BaseOffset || e.LastOffset > segment.LastOffset || e.FirstOffset > e.LastOffset {
			return nil, corruptf(key, -1, "aborted transaction %d..%d of producer %d: its marker is outside segment %d..%d",
				e.FirstOffset, e.LastOffset, e.ProducerID, segment.BaseOffset, segment.LastOffset)
		}
	}
	t.txnIndexes.put(segment.SegmentID, entries)
	if t.deleted.contains(segment.SegmentID) {
		t.txnIndexes.remove(segment.SegmentID) // deleted while it was read (deletedSegments)
	}
	return entries, nil
}

// describeTxnIndex returns what a segment's manifest entry records of the
// .txnindex uploaded with it (SegmentFiles.TxnIndex; empty uploads an
// empty object): whether it holds entries. A read_committed fetch never
// reads a remote index recorded empty (KIP-1058).
func describeTxnIndex(index []byte) metadata.TxnIndexState {
	if len(index) == 0 {
		return metadata.TxnIndexEmpty
	}
	return metadata.TxnIndexNotEmpty
}

// txnIndexListing is what a listing of the bucket says of the .txnindex
// objects it holds, by segment id: empty or not, from their sizes. A
// recovery from the bucket (ManifestSnapshots) imports its entries with
// it; a segment whose object is not listed keeps TxnIndexUnknown (read
// when needed, as before).
type txnIndexListing map[uuid.UUID]metadata.TxnIndexState

// add notes key if it is a .txnindex object.
func (l txnIndexListing) add(key string, size int64) {
	if _, id, suffix, ok := parseSegmentObject(key); ok && suffix == suffixTxnIndex {
		l[id] = metadata.TxnIndexNotEmpty
		if size == 0 {
			l[id] = metadata.TxnIndexEmpty
		}
	}
}

// mark sets the TxnIndex of the segments whose .txnindex was listed.
func (l txnIndexListing) mark(segments []metadata.SegmentManifest) {
	for i := range segments {
		if state, ok := l[segments[i].SegmentID]; ok {
			segments[i].TxnIndex = state
		}
	}
}

// txnIndexCache holds decoded .txnindex objects by segment id, forgetting
// all of them past txnIndexCacheEntries segments (they are small and
// re-read cheaply).
type txnIndexCache struct {
	mu      sync.Mutex // guards entries
	entries map[uuid.UUID][]logsegment.AbortedTxn
}

const txnIndexCacheEntries = 16384

func newTxnIndexCache() *txnIndexCache {
	return &txnIndexCache{entries: map[uuid.UUID][]logsegment.AbortedTxn{}}
}

func (c *txnIndexCache) get(id uuid.UUID) ([]logsegment.AbortedTxn, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	entries, ok := c.entries[id]
	return entries, ok
}

func (c *txnIndexCache) put(id uuid.UUID, entries []logsegment.AbortedTxn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= txnIndexCacheEntries {
		clear(c.entries)
	}
	c.entries[id] = entries
}

func (c *txnIndexCache) remove(id uuid.UUID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, id)
}
