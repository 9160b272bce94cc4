package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/metadata"
)

// RemoteReader reads the tiered segments of partitions from the object
// store: what Fetch below the local log start, ListOffsets by timestamp
// and a follower starting after the remote data need. A segment is named
// by its partition and its Raft manifest entry. tiering.Tier implements it
// and cmd/internal/node plugs it in; the broker never imports tiering.
// Methods are safe for concurrent use; none returns data with an error. A
// read refused because the reader's queue is full (Kafka's
// remote.log.reader.max.pending.tasks) returns an error with the method
// RemoteReadQueueFull() bool: that partition is answered without data and
// without an error, and the consumer asks again.
type RemoteReader interface {
	// Read returns whole record batches of segment, starting with the one
	// holding offset, byte for byte as the local segment held them, while
	// the total stays within maxBytes; with minOneBatch the first batch
	// comes whole even past maxBytes (KIP-74), without it such a read
	// returns nil and no error. The batches may lie in the reader's
	// buffers (no copy): the caller releases them once done with the
	// bytes, on every path (Fetch: once the response is written to the
	// socket or dropped).
	Read(ctx context.Context, p metadata.TopicPartition, segment metadata.SegmentManifest, offset int64, maxBytes int, minOneBatch bool) (*recordbatch.Batches, error)
	// TimestampStart returns the offset in segment where a search for the
	// first batch with a max timestamp at or above timestamp starts.
	TimestampStart(ctx context.Context, p metadata.TopicPartition, segment metadata.SegmentManifest, timestamp int64) (int64, error)
	// ReadProducerSnapshot returns the producer-state snapshot uploaded
	// with segment: the state at its end (empty when there was none).
	ReadProducerSnapshot(ctx context.Context, p metadata.TopicPartition, segment metadata.SegmentManifest) ([]byte, error)
	// ReadAbortedTxns returns the aborted transactions whose ABORT marker
	// is in segment (its .txnindex), in marker order.
	ReadAbortedTxns(ctx context.Context, p metadata.TopicPartition, segment metadata.SegmentManifest) ([]segment.AbortedTxn, error)
}

// remoteQueueFull reports a read refused by the remote reader because its
// queue is full.
func remoteQueueFull(err error) bool {
	var full interface{ RemoteReadQueueFull() bool }
	return errors.As(err, &full) && full.RemoteReadQueueFull()
}

// remoteReadConcurrency bounds the partitions one Fetch reads from the
// object store at once.
const remoteReadConcurrency = 8

// committedRemote cuts a read_committed read from the tiered segment seg
// (batches, from offset) at the partition's last stable offset, as local
// reads stop (the tier manager uploads only below it, so this matters
// only for segments uploaded by older versions), without copying, and
// returns the aborted transactions overlapping what is left.
func (s *Server) committedRemote(ctx context.Context, state *metadata.State, p *partition.Partition, seg metadata.SegmentManifest, offset int64, batches *recordbatch.Batches) ([]segment.AbortedTxn, error) {
	lastStable := p.LastStableOffset()
	batches.CutBelow(lastStable)
	if batches.Len() == 0 {
		return nil, nil
	}
	return s.remoteAbortedTxns(ctx, state, p, seg, offset, readEnd(batches, lastStable))
}

// remoteAbortedTxns returns the aborted transactions overlapping
// [from, upTo) for a read_committed read starting in the tiered segment
// first, by first offset: the entries of the .txnindex objects of first
// and of the remote segments after it, then the local log's (a
// transaction's ABORT marker, which names its entry, may be in any later
// segment), without duplicates (local and remote segments overlap). As
// Kafka's RemoteLogManager, it stops after a segment holding an entry whose
// last stable offset reaches upTo: no transaction open later can have
// started below upTo. As Kafka since KIP-1058, a segment whose manifest
// entry says its .txnindex is empty is skipped without reading it (it has
// no entry to return nor to stop at); one whose entry does not say
// (uploaded by an older version) is read. So in a partition without
// aborted transactions a read_committed Fetch reads no .txnindex, where
// it would read every later remote segment's.
func (s *Server) remoteAbortedTxns(ctx context.Context, state *metadata.State, p *partition.Partition, first metadata.SegmentManifest, from, upTo int64) ([]segment.AbortedTxn, error) {
	var out []segment.AbortedTxn
	complete := false
	var err error
	state.EachSegment(p.TopicID(), p.Index(), first.BaseOffset, func(e metadata.SegmentManifest) bool {
		if e.State != metadata.SegmentCopyFinished || e.LastOffset < first.BaseOffset || e.TxnIndex == metadata.TxnIndexEmpty {
			return true
		}
		var entries []segment.AbortedTxn
		if entries, err = s.cfg.RemoteReader.ReadAbortedTxns(ctx, p.Name(), e); err != nil {
			return false
		}
		for _, t := range entries {
			if t.LastOffset >= from && t.FirstOffset < upTo {
				out = append(out, t)
			}
			complete = complete || t.LastStableOffset >= upTo
		}
		return !complete
	})
	if err != nil {
		return nil, fmt.Errorf("aborted transactions of remote segment: %w", err)
	}
	if !complete {
		out = append(out, p.AbortedTransactions(from, upTo)...)
	}
	slices.SortStableFunc(out, func(a, b segment.AbortedTxn) int { return cmp.Compare(a.FirstOffset, b.FirstOffset) })
	return slices.Compact(out), nil
}

// fetchAbortedTransactions is the Fetch response's form of aborted
// transactions (by first offset).
func fetchAbortedTransactions(aborted []segment.AbortedTxn) []kmsg.FetchResponseTopicPartitionAbortedTransaction {
	out := make([]kmsg.FetchResponseTopicPartitionAbortedTransaction, 0, len(aborted))
	for _, a := range aborted {
		at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
		at.ProducerID, at.FirstOffset = a.ProducerID, a.FirstOffset
		out = append(out, at)
	}
	return out
}
