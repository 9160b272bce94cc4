package tiering

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/metadata"
)

// Read returns whole record batches of a remote segment, starting with the
// batch that holds offset, byte-identical to the segment's local .log. With
// minOneBatch the first batch comes whole even when it is larger than
// maxBytes (KIP-74); without, such a read returns nil and no error (a
// Fetch's later partitions, which Kafka answers without data then). Later
// batches are added while the total stays within maxBytes. A read never
// crosses into the next segment: the caller moves on with the manifest.
//
// The offset index is fetched once and cached in memory (a sequential
// reader, one whose read starts where its previous read of the partition
// ended, does not need it); the .log is read in aligned chunks
// (Config.ChunkBytes) through the chunk caches; readers of one chunk share
// one GET; a sequential reader's misses fetch its read-ahead window in one
// GET and the window after each read is fetched ahead. Every returned
// batch is checked (framing, CRC-32C, dense offsets) before it is
// returned. At most Config.ReaderThreads reads run at once and
// Config.ReaderMaxPendingTasks wait.
//
// The batches are not copied out of the chunks: the result holds a
// reference to each chunk it covers (its buffers are slices of them, a
// batch may span two) until its Release, which the caller must call once
// it is done with the bytes (the broker: once the Fetch response is
// written to the socket, or dropped). An unreleased result keeps its
// chunks' buffers from going back to the pool; Stats.ReadChunksHeld counts
// the references results hold.
//
// Errors: ErrOffsetOutOfRange when offset is outside the segment;
// ErrUnavailable (retriable) when the store cannot be reached; ErrBusy
// (retriable) when too many reads wait already; ErrNotFound
// when the segment's objects are gone; a *CorruptError when the objects
// hold bytes that fail the checks. No error ever comes with data.
func (t *Tier) Read(ctx context.Context, p metadata.TopicPartition, segment metadata.SegmentManifest, offset int64, maxBytes int, minOneBatch bool) (*recordbatch.Batches, error) {
	if t.closed.Load() {
		return nil, ErrClosed
	}
	if offset < segment.BaseOffset || offset > segment.LastOffset {
		return nil, fmt.Errorf("%w: offset %d not in remote segment %d..%d of %s", ErrOffsetOutOfRange, offset, segment.BaseOffset, segment.LastOffset, p)
	}
	defer func(started time.Time) { t.readSeconds.Observe(time.Since(started).Seconds()) }(time.Now())
	release, err := t.admit(ctx)
	if err != nil {
		return nil, fmt.Errorf("tiering: read offset %d of %s: %w", offset, p, err)
	}
	defer release()
	reader := t.takeReader(p, segment, offset)
	batches, start, base, caughtUp, err := t.read(ctx, p, segment, offset, maxBytes, minOneBatch, true, reader)
	if IsCorrupt(err) {
		// The cache may hold a damaged chunk (a file changed on disk, or
		// written wrong); read the range straight from the store.
		t.logger.Warn("tiering: remote read failed its checks, reading again from the store", "segment", uuid.UUID(segment.SegmentID), "offset", offset, "err", err)
		batches, start, base, caughtUp, err = t.read(ctx, p, segment, offset, maxBytes, minOneBatch, false, readerState{position: -1, base: -1})
	}
	if err != nil {
		return nil, fmt.Errorf("tiering: read offset %d of %s (segment %s): %w", offset, p, uuid.UUID(segment.SegmentID), err)
	}
	if batches == nil {
		// Nothing fits (the first batch is over maxBytes, without
		// minOneBatch). The reader's mark stays: its next read of offset
		// is still sequential.
		return nil, nil
	}
	t.afterRead(p, segment, reader, offset, start, base, batches, caughtUp)
	return batches, nil
}

// admit takes a reader thread for one read, waiting (as one of at most
// ReaderMaxPendingTasks) while all are busy; beyond that it returns
// ErrBusy at once.
func (t *Tier) admit(ctx context.Context) (release func(), err error) {
	select {
	case t.readSlots <- struct{}{}:
	default:
		t.stats.readsRejected.Add(1)
		return nil, ErrBusy
	}
	select {
	case t.readThreads <- struct{}{}:
	default:
		t.stats.readsWaiting.Add(1)
		select {
		case t.readThreads <- struct{}{}:
			t.stats.readsWaiting.Add(-1)
		case <-ctx.Done():
			t.stats.readsWaiting.Add(-1)
			<-t.readSlots
			return nil, ctx.Err()
		}
	}
	return func() {
		<-t.readThreads
		<-t.readSlots
	}, nil
}

// read locates and returns the batches; useCache false bypasses (and
// refreshes) the chunk cache. reader says where the batch holding offset
// starts, and its base offset, when a sequential reader's previous read
// told (position >= 0; then the offset index is not needed) and the
// read-ahead window its misses fetch (window > 0). When what it read fails
// a check, the offset index and the chunks it used are dropped from the
// caches.
//
// Every batch header read is tied to an offset known independently of the
// chunk bytes (an anchor): the walk starts at a position whose batch's
// base offset (segment start, or a reader's previous read) or last offset
// (the offset index entry) is known, and each batch after it must start
// where the one before ended. So the header bytes the batch CRC does not
// cover are checked too: base offset by the anchor and density, batch
// length by the framing (a wrong one moves the CRC's range), magic by
// ParseHeader, partition leader epoch against the manifest
// (verifyBatches). That is what lets a chunk cache file go without a
// checksum of its own (chunkCache).
// It returns the batches, the byte position of the first and its base
// offset.
func (t *Tier) read(ctx context.Context, p metadata.TopicPartition, segment metadata.SegmentManifest, offset int64, maxBytes int, minOneBatch, useCache bool, reader readerState) (_ *recordbatch.Batches, _, _ int64, caughtUp catchUp, err error) {
	cursor := &chunkCursor{tier: t, ctx: ctx, partition: p, segment: segment, useCache: useCache, chunks: make(map[int64]*chunk), runEnd: -1, from: -1}
	defer cursor.release()
	defer func() {
		if IsCorrupt(err) {
			t.indexes.remove(segment.SegmentID)
			for index, ch := range cursor.chunks {
				if ch.fromDisk {
					t.stats.corruptChunks.Add(1) // the cache file's bytes were wrong (or the store's, cached)
				}
				t.cache.remove(chunkKey{segment: segment.SegmentID, index: index})
			}
		}
	}()
	// The anchor: the batch at start begins at offset base (when at least
	// 0), else ends at offset last (an offset index entry).
	start, base, last := reader.position, reader.base, int64(-1)
	if start < 0 || base < 0 {
		index, err := t.offsetIndex(ctx, p, segment)
		if err != nil {
			return nil, 0, 0, notCaughtUp, err
		}
		start, base = 0, segment.BaseOffset
		if entry, ok := index.entry(offset - segment.BaseOffset); ok {
			start, base, last = int64(entry.Position), -1, segment.BaseOffset+int64(entry.RelativeOffset)
		}
	}
	cursor.from = start
	if reader.window > 0 {
		cursor.runEnd = t.runEnd(segment, start/t.config.ChunkBytes, start/t.config.ChunkBytes+min(reader.window, int64(t.config.PrefetchChunks))-1)
		cursor.parallel = t.caughtUpBefore(reader.window)
	}
	logKey := t.layout.segmentKey(p, segment, suffixLog)
	header := func(position int64) (recordbatch.Header, error) {
		if segment.SizeBytes-position < recordbatch.HeaderSize {
			return recordbatch.Header{}, corruptf(logKey, position, "torn batch header (object is %d bytes)", segment.SizeBytes)
		}
		raw, err := cursor.bytes(position, recordbatch.HeaderSize)
		if err != nil {
			return recordbatch.Header{}, err
		}
		h, err := recordbatch.ParseHeader(raw)
		if err != nil {
			return recordbatch.Header{}, corruptf(logKey, position, "%v", err)
		}
		if position+h.Size() > segment.SizeBytes {
			return recordbatch.Header{}, corruptf(logKey, position, "batch of %d bytes runs past the end", h.Size())
		}
		return h, nil
	}

	// Walk from the indexed (or known) position to the batch holding offset.
	var first recordbatch.Header
	for {
		if start >= segment.SizeBytes {
			return nil, 0, 0, notCaughtUp, corruptf(logKey, start, "offset %d not found before the end", offset)
		}
		h, err := header(start)
		if err != nil {
			return nil, 0, 0, notCaughtUp, err
		}
		switch {
		case base >= 0 && h.BaseOffset != base:
			return nil, 0, 0, notCaughtUp, corruptf(logKey, start, "batch starts at offset %d, want %d", h.BaseOffset, base)
		case base < 0 && h.LastOffset() != last:
			return nil, 0, 0, notCaughtUp, corruptf(logKey, start, "batch ends at offset %d, the offset index says %d", h.LastOffset(), last)
		}
		if h.LastOffset() >= offset {
			if h.BaseOffset > offset {
				return nil, 0, 0, notCaughtUp, corruptf(logKey, start, "batch %d..%d follows a gap before %d", h.BaseOffset, h.LastOffset(), offset)
			}
			first = h
			break
		}
		start += h.Size()
		base = h.LastOffset() + 1
	}
	if !minOneBatch && first.Size() > int64(maxBytes) {
		return nil, start, first.BaseOffset, cursor.caughtUp, nil // nothing fits: no chunk held, none verified
	}
	// Add following batches while they fit.
	end := start + first.Size()
	for end-start+recordbatch.HeaderSize <= int64(maxBytes) && end < segment.SizeBytes {
		h, err := header(end)
		if err != nil {
			return nil, 0, 0, notCaughtUp, err
		}
		if end-start+h.Size() > int64(maxBytes) {
			break
		}
		end += h.Size()
	}
	out, err := cursor.hold(start, end-start)
	if err != nil {
		return nil, 0, 0, notCaughtUp, err
	}
	if err := verifyBatches(logKey, start, out, offset, first.BaseOffset, segment, cursor.verifiedAhead, &t.stats); err != nil {
		out.Release()
		return nil, 0, 0, notCaughtUp, err
	}
	if reader.window > 0 {
		// A sequential reader is done with the chunks before the one its
		// read ends in, and with that one too when the read ends the
		// segment (its next read is in the next segment): they leave the
		// memory LRU once they are in the disk cache, their buffers back
		// to the pool (chunkCache.passed), and meanwhile wait at its
		// back, so they leave it before the chunks loaded or fetched
		// ahead of the readers (else every chunk read would push the
		// windows ahead out, to be read from disk again).
		passed := (end - 1) / t.config.ChunkBytes
		if end < segment.SizeBytes {
			passed-- // its next read starts in the chunk this one ends in
		}
		for index := start / t.config.ChunkBytes; index <= passed; index++ {
			t.cache.passed(chunkKey{segment: segment.SegmentID, index: index})
		}
	}
	return out, start, first.BaseOffset, cursor.caughtUp, nil
}

// verifyBatches checks what a read is about to return: whole batches with
// valid headers and CRCs (a batch spanning two chunks checked across the
// boundary, not assembled), the first starting at firstBase (its anchored
// base offset; see read) and holding offset, offsets dense, none past the
// segment's last offset, each batch's partition leader epoch the one the
// segment's manifest gives its base offset (EpochRanges, taken from the
// batches at upload). With the anchor, these cover the header bytes the
// batch CRC does not (base offset, batch length, leader epoch, magic, the
// CRC itself): each byte returned is checked once, whatever its source.
// The CRC-32C of a batch that ahead (may be nil) reports verified by the
// read-ahead that loaded its chunk (verifyAhead; given the batch's
// position in the segment and its size) is not computed again; all the
// other checks are made on every batch.
func verifyBatches(key string, position int64, batches *recordbatch.Batches, offset, firstBase int64, segment metadata.SegmentManifest, ahead func(position, size int64) bool, stats *stats) error {
	next := int64(-1)
	epochs, epoch := segment.EpochRanges, 0
	checkCRC := func(at int64, h recordbatch.Header) bool {
		if ahead != nil && ahead(position+at, h.Size()) {
			return false
		}
		stats.bytesCRCOnRead.Add(h.Size())
		return true
	}
	at, err := batches.Scan(checkCRC, func(at int64, h recordbatch.Header) error {
		for epoch+1 < len(epochs) && epochs[epoch+1].StartOffset <= h.BaseOffset {
			epoch++
		}
		switch {
		case next < 0 && (h.BaseOffset != firstBase || h.LastOffset() < offset || h.BaseOffset > offset):
			return fmt.Errorf("first batch %d..%d does not start at %d and hold offset %d", h.BaseOffset, h.LastOffset(), firstBase, offset)
		case next >= 0 && h.BaseOffset != next:
			return fmt.Errorf("batch base offset %d, want %d", h.BaseOffset, next)
		case h.LastOffset() > segment.LastOffset:
			return fmt.Errorf("batch ends at %d, past the segment's last offset %d", h.LastOffset(), segment.LastOffset)
		case len(epochs) == 0:
			return errors.New("the segment's manifest has no leader epochs")
		case h.PartitionLeaderEpoch != epochs[epoch].Epoch || h.BaseOffset < epochs[epoch].StartOffset:
			return fmt.Errorf("batch %d..%d has leader epoch %d, the segment's manifest %d from offset %d", h.BaseOffset, h.LastOffset(), h.PartitionLeaderEpoch, epochs[epoch].Epoch, epochs[epoch].StartOffset)
		}
		next = h.LastOffset() + 1
		return nil
	})
	if err != nil {
		return corruptf(key, position+at, "%v", err)
	}
	return nil
}

// verifiedAhead reports whether the read-ahead that loaded the batch of
// size bytes at position checked its CRC-32C: one lying whole in one chunk
// of the cursor (chunk.verified), or one spanning two whose second checked
// it over the very first chunk the cursor holds (chunk.spanAt, spanPrev)
// or whose first checked it over the very second (spanNextAt, spanNext).
func (c *chunkCursor) verifiedAhead(position, size int64) bool {
	chunkBytes := c.tier.config.ChunkBytes
	index := position / chunkBytes
	switch (position+size-1)/chunkBytes - index {
	case 0:
	case 1:
		first, firstOK := c.chunks[index]
		second, secondOK := c.chunks[index+1]
		return firstOK && secondOK && (second.spanAt == position && second.spanPrev == first.id ||
			first.spanNextAt == position && first.spanNext == second.id)
	default:
		return false
	}
	ch, ok := c.chunks[index]
	if !ok || len(ch.verified) == 0 {
		return false
	}
	_, found := slices.BinarySearch(ch.verified, uint32(position-index*chunkBytes))
	return found
}

// chunkCursor serves byte ranges of one segment's .log from its chunks,
// keeping a reference to each chunk it loaded until release, at the end of
// one read.
type chunkCursor struct {
	tier      *Tier
	ctx       context.Context
	partition metadata.TopicPartition
	segment   metadata.SegmentManifest
	useCache  bool
	chunks    map[int64]*chunk // loaded chunks by index
	// runEnd, when at least 0, is the last chunk a miss fetches through:
	// a sequential reader's misses fetch its read-ahead window in one GET.
	runEnd int64
	// from is where the read's walk starts (a batch start, as far as its
	// anchor tells; -1 before it is known): a hint for onPath.
	from int64
	// caughtUp is set when the read found a chunk still on its way ahead
	// of it (a read-ahead run's, not one this read started): the reader
	// reads faster than the store, or the fetch quota, delivers (see
	// afterRead). started is set once this read has started a run of its
	// own.
	caughtUp catchUp
	started  bool
	// parallel is set for a reader that caught up before (its window
	// grew past PrefetchChunks): its misses do not stream either.
	parallel bool
}

// catchUp is what a sequential reader's read found of its read-ahead
// (chunkCursor.caughtUp; afterRead decides the reader's window by it).
type catchUp uint8

const (
	// notCaughtUp: every chunk the read took had arrived, or was not
	// fetched ahead of it.
	notCaughtUp catchUp = iota
	// caughtUpWithStore: the read found a chunk a read-ahead run was
	// still fetching while the fetch quota was not saturated: the reader
	// reads faster than the store's connections deliver.
	caughtUpWithStore
	// caughtUpWithQuota: as caughtUpWithStore, but with the fetch quota
	// saturated (quota.Pacer.Saturated): the reader goes at the quota's
	// pace.
	caughtUpWithQuota
)

// stream reports whether the cursor's next miss fetches its run with the
// segment's stream (see fetchChunk): a sequential reader's, unless it
// caught up with its read-ahead (now or before).
func (c *chunkCursor) stream() bool { return c.runEnd >= 0 && c.caughtUp == notCaughtUp && !c.parallel }

// release drops the cursor's chunk references.
func (c *chunkCursor) release() {
	for index, ch := range c.chunks {
		ch.release()
		delete(c.chunks, index)
	}
}

// hold returns the length bytes at position as Batches over the chunks'
// buffers, holding a reference to each chunk it covers until its Release.
func (c *chunkCursor) hold(position, length int64) (*recordbatch.Batches, error) {
	chunkBytes := c.tier.config.ChunkBytes
	firstChunk, lastChunk := position/chunkBytes, (position+length-1)/chunkBytes
	buffers := make([][]byte, 0, lastChunk-firstChunk+1)
	held := make([]*chunk, 0, lastChunk-firstChunk+1)
	for index := firstChunk; index <= lastChunk; index++ {
		data, err := c.chunk(index)
		if err != nil {
			return nil, err
		}
		from, to := max(position-index*chunkBytes, 0), min(position+length-index*chunkBytes, int64(len(data)))
		if from >= to {
			return nil, corruptf(c.tier.layout.segmentKey(c.partition, c.segment, suffixLog), position, "chunk %d is %d bytes, short", index, len(data))
		}
		buffers = append(buffers, data[from:to])
		held = append(held, c.chunks[index])
	}
	got := int64(0)
	for _, b := range buffers {
		got += int64(len(b))
	}
	if got != length {
		return nil, corruptf(c.tier.layout.segmentKey(c.partition, c.segment, suffixLog), position, "got %d of %d bytes", got, length)
	}
	for _, ch := range held {
		ch.retain()
	}
	c.tier.stats.readChunksHeld.Add(int64(len(held)))
	return recordbatch.NewBatches(buffers, func() {
		for _, ch := range held {
			ch.release()
		}
		c.tier.stats.readChunksHeld.Add(-int64(len(held)))
	}), nil
}

// bytes returns length bytes at position (a batch header, while read walks
// to its batches): a slice of a chunk (valid until release), or a copy
// when they span two chunks.
func (c *chunkCursor) bytes(position, length int64) ([]byte, error) {
	chunkBytes := c.tier.config.ChunkBytes
	firstChunk, lastChunk := position/chunkBytes, (position+length-1)/chunkBytes
	if firstChunk == lastChunk {
		chunk, err := c.chunk(firstChunk)
		if err != nil {
			return nil, err
		}
		offset := position - firstChunk*chunkBytes
		if offset+length > int64(len(chunk)) {
			return nil, corruptf(c.tier.layout.segmentKey(c.partition, c.segment, suffixLog), position, "chunk %d is %d bytes, short", firstChunk, len(chunk))
		}
		return chunk[offset : offset+length], nil
	}
	parts := make([][]byte, 0, lastChunk-firstChunk+1)
	for index := firstChunk; index <= lastChunk; index++ {
		chunk, err := c.chunk(index)
		if err != nil {
			return nil, err
		}
		from, to := max(position-index*chunkBytes, 0), min(position+length-index*chunkBytes, int64(len(chunk)))
		if from > to {
			return nil, corruptf(c.tier.layout.segmentKey(c.partition, c.segment, suffixLog), position, "chunk %d is %d bytes, short", index, len(chunk))
		}
		parts = append(parts, chunk[from:to])
	}
	out := bytes.Join(parts, nil)
	if int64(len(out)) != length {
		return nil, corruptf(c.tier.layout.segmentKey(c.partition, c.segment, suffixLog), position, "got %d of %d bytes", len(out), length)
	}
	return out, nil
}

// chunk returns the bytes of chunk index: from the cursor, the memory
// LRU, a flight of it (a GET, or a load from the disk cache ahead of a
// sequential reader), the disk cache, or a new GET (of the read-ahead
// window for a sequential reader).
func (c *chunkCursor) chunk(index int64) ([]byte, error) {
	if ch, ok := c.chunks[index]; ok {
		return ch.data, nil
	}
	key := chunkKey{segment: c.segment.SegmentID, index: index}
	var ch *chunk
	if cached, ok := c.useCacheGet(key); ok {
		c.tier.stats.cacheHits.Add(1)
		ch = cached
	} else {
		var started bool
		var err error
		if c.caughtUp == notCaughtUp && !c.started && c.tier.aheadOnItsWay(key) {
			c.caughtUp = caughtUpWithStore
			if c.tier.quotas.fetch.Saturated() {
				// The fetch quota has been paying for remote reads back
				// to back: it, not the store, holds them back.
				c.caughtUp = caughtUpWithQuota
			} else {
				// The runs waiting to read on after the one this read
				// caught up with make GETs of their own now.
				c.tier.streams.release(c.segment.SegmentID)
			}
		}
		ch, started, err = c.tier.fetchChunk(c.ctx, c.partition, c.segment, index, max(c.runEnd, index), c.useCache, c.stream())
		if errors.Is(err, errOnDisk) {
			// The load this reader found on its way ended meanwhile.
			if cached, ok := c.loadOnPath(key); ok {
				c.tier.stats.cacheHits.Add(1)
				if cached.fromDisk {
					c.tier.stats.diskReads.Add(1)
				}
				c.chunks[index] = cached
				return cached.data, nil
			}
			ch, started, err = c.tier.fetchChunk(c.ctx, c.partition, c.segment, index, max(c.runEnd, index), false, c.stream())
		}
		c.started = c.started || started
		if err != nil && !started && c.ctx.Err() == nil {
			// Joined someone else's GET or load (a read-ahead, or a run
			// of which this chunk was not the first) that failed: fetch
			// on our own account, with the read retries.
			ch, _, err = c.tier.fetchChunk(c.ctx, c.partition, c.segment, index, index, false, c.stream())
		}
		if err == nil && ch.fromDisk {
			c.tier.stats.cacheHits.Add(1) // joined a load from the disk cache ahead of this reader
		} else {
			c.tier.stats.cacheMisses.Add(1)
		}
		if err != nil {
			return nil, err
		}
	}
	c.chunks[index] = ch
	return ch.data, nil
}

// onPath returns what a chunk this reader reads from its file on its path
// gets before it is published: where the batch walk goes on after it
// (chunk.tail, from the chunk before or where this read's walk starts),
// for the loads ahead that follow it; no CRC (this read checks what it
// returns).
func (c *chunkCursor) onPath(index int64) func(*chunk) {
	return func(ch *chunk) {
		if prev, ok := c.chunks[index-1]; ok {
			c.tier.verifyAhead(c.segment, index, ch, prev, false, c.from)
			return
		}
		prev := c.tier.previousChunk(c.ctx, c.segment, index, false)
		c.tier.verifyAhead(c.segment, index, ch, prev, false, c.from)
		if prev != nil {
			prev.release()
		}
	}
}

// useCacheGet returns the chunk from the memory LRU or, unless a flight
// of it is on its way (joined by fetchChunk instead), from the disk
// cache: a read of its file on this reader's path.
func (c *chunkCursor) useCacheGet(key chunkKey) (*chunk, bool) {
	if !c.useCache {
		return nil, false
	}
	if ch, ok := c.tier.cache.getMemory(key); ok {
		return ch, true
	}
	c.tier.flightMu.Lock()
	_, inFlight := c.tier.chunkFlights[key]
	c.tier.flightMu.Unlock()
	if inFlight {
		return nil, false
	}
	ch, ok := c.loadOnPath(key)
	if ok && ch.fromDisk {
		c.tier.stats.diskReads.Add(1)
	}
	return ch, ok
}

// loadOnPath reads chunk key from the disk cache on this reader's path,
// once the fetch quota has paid for it (as a load ahead pays before it
// reads): a reader whose loads ahead did not keep ahead of it, as under a
// saturated quota that holds the read-ahead back, does not read past the
// quota on its own.
func (c *chunkCursor) loadOnPath(key chunkKey) (*chunk, bool) {
	if c.tier.quotas.fetch.BytesPerSecond() > 0 {
		if !c.tier.cache.contains(key) {
			return nil, false // nothing to pay for
		}
		if err := c.tier.paceFetch(c.ctx, c.segment, key.index); err != nil {
			return nil, false // the reader gave up: its fetch fails on ctx
		}
	}
	return c.tier.cache.loadDisk(key, c.onPath(key.index))
}

// aheadOnItsWay reports whether chunk key is being fetched ahead of its
// reader (a read-ahead run's chunk that has not arrived).
func (t *Tier) aheadOnItsWay(key chunkKey) bool {
	t.flightMu.Lock()
	defer t.flightMu.Unlock()
	f, ok := t.chunkFlights[key]
	if !ok || !f.ahead {
		return false
	}
	select {
	case <-f.done:
		return false
	default:
		return true
	}
}

// flight is one GET of a whole object (an index) shared by every reader
// that needs its result.
type flight struct {
	done chan struct{} // closed when data and err are set
	data []byte
	err  error
}

// chunkFlight is one chunk being fetched, shared by every reader that
// needs it. Several chunk flights may come from one ranged GET (a run).
type chunkFlight struct {
	done  chan struct{} // closed when chunk or err is set
	chunk *chunk        // the flight's reference, dropped when it leaves the table
	err   error
	// joined counts the waiters that joined before done: each is handed a
	// reference when the chunk arrives (under flightMu).
	joined int32
	// ahead marks a chunk fetched ahead of its reader: it holds a chunk's
	// worth of the ReadAheadBytes budget until it arrives (or fails).
	ahead bool
}

// fetchChunk returns chunk index of segment with a reference for the
// caller, joining a flight of it or starting a GET of chunks index..last
// (stopping before the first one already cached or in flight). The GET
// runs detached from ctx (bounded by Config.RequestTimeout and Close), so
// one reader giving up does not fail the others; it is retried (while
// nothing has arrived) with the read retry policy; the chunks go into the
// memory LRU and, behind the readers, into the disk cache. started reports
// that this call started the GET rather than joining one. A refresh
// (useCache false) never joins a flight that started before it. With
// stream (a sequential reader) the run is read from the segment's parked
// stream, or a new GET goes to the segment's end and is parked after it
// (runGET).
func (t *Tier) fetchChunk(ctx context.Context, p metadata.TopicPartition, segment metadata.SegmentManifest, index, last int64, join, stream bool) (_ *chunk, _ bool, err error) {
	key := chunkKey{segment: segment.SegmentID, index: index}
	// A token for the GET this call may start (readerGETs): returned at
	// once unless the GET takes it.
	select {
	case t.readerGETs <- struct{}{}:
	default:
		t.stats.readerGETWaits.Add(1)
		select {
		case t.readerGETs <- struct{}{}:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	handed := false
	defer func() {
		if !handed {
			<-t.readerGETs
		}
	}()
	t.flightMu.Lock()
	f, joined := t.chunkFlights[key]
	if joined && join {
		select {
		case <-f.done:
			// A flight that already failed is not joined: this reader
			// asks the store again rather than taking an old error.
			if f.err == nil {
				ch := f.chunk.retain()
				t.flightMu.Unlock()
				t.stats.sharedFetches.Add(1)
				return ch, false, nil
			}
			joined = false
		default:
			f.joined++
		}
	} else {
		joined = false
	}
	if joined {
		t.flightMu.Unlock()
		t.stats.sharedFetches.Add(1)
		defer t.storeWait(time.Now())
		select {
		case <-f.done:
			return f.chunk, false, f.err // the reference was handed over with done
		case <-ctx.Done():
			return nil, false, ctx.Err() // its reference, if any, is left to the collector
		}
	}
	if join {
		// A flight ends (leaves the table) only once its chunk is in memory
		// or queued for disk: one that ended since the caller looked in
		// the caches is found there.
		if ch, ok := t.cache.getMemory(key); ok {
			t.flightMu.Unlock()
			t.stats.sharedFetches.Add(1)
			return ch, false, nil
		}
		// A load from the disk cache ahead of the reader (loadAhead)
		// leaves its chunk in the memory LRU, which may have let it go
		// already (or hold nothing): the chunk is still on disk.
		if t.cache.contains(key) {
			t.flightMu.Unlock()
			return nil, false, errOnDisk
		}
	}
	// The chunks after the one this reader waits for are read-ahead: they
	// come out of the budget, and the run shrinks to what it grants
	// (aheadMu is taken under flightMu, never the other way round).
	granted := t.reserveAhead(t.paceAhead(last - index))
	flights := t.startRunLocked(segment, index, index+granted, true)
	t.flightMu.Unlock()
	if flights == nil {
		t.releaseAhead(granted)
		return nil, false, ErrClosed
	}
	t.releaseAhead(granted - int64(len(flights)-1))
	f = flights[0]
	t.stats.prefetches.Add(int64(len(flights) - 1)) // the window, ahead of the reader
	handed = true
	defer t.storeWait(time.Now())
	t.runGET(p, segment, index, flights, t.config.ReadAttempts, stream, func() { <-t.readerGETs })
	select {
	case <-f.done:
		return f.chunk, true, f.err
	case <-ctx.Done():
		return nil, true, ctx.Err()
	}
}

// storeWait counts a read's wait since began for a chunk from the store
// (strata_tiering_store_wait_seconds).
func (t *Tier) storeWait(began time.Time) {
	t.stats.storeWaits.Add(1)
	t.storeWaitSeconds.Observe(time.Since(began).Seconds())
}

// startRunLocked registers flights for chunks first..last, stopping before
// one cached or in flight (the first is registered regardless, replacing a
// failed or older flight); nil when the tier is closed. With waiter, the
// first flight counts one waiter (a reader's miss); the others, and the
// first without waiter, are read-ahead (chunkFlight.ahead, set here, before
// another reader can find them: aheadOnItsWay reads it under flightMu).
// Called with flightMu held.
func (t *Tier) startRunLocked(segment metadata.SegmentManifest, first, last int64, waiter bool) []*chunkFlight {
	if t.closed.Load() {
		return nil
	}
	var flights []*chunkFlight
	for index := first; index <= last; index++ {
		key := chunkKey{segment: segment.SegmentID, index: index}
		if index > first {
			if _, busy := t.chunkFlights[key]; busy || t.cache.contains(key) {
				break
			}
		}
		f := &chunkFlight{done: make(chan struct{}), ahead: index > first || !waiter}
		if index == first && waiter {
			f.joined = 1
		}
		t.chunkFlights[key] = f
		flights = append(flights, f)
	}
	t.runStarts[chunkKey{segment: segment.SegmentID, index: first}]++
	t.workers.Add(1)
	return flights
}

// runGET fetches the chunks of flights (consecutive, from first) in the
// background, completing each flight as soon as its bytes have arrived, so
// a reader waits only for its chunk. The bytes come from the stream parked
// at first (streams: the body of an earlier run's GET of the segment that
// ended just before first; with stream, one still being read there is
// waited for, without it declined), else from a new GET: of the run's
// range, or with stream (a sequential reader's run) from first to the
// segment's end, of which only the run's chunks are read. Opening the GET and reading the
// first chunk are tried attempts times (a parked stream that fails on its
// first chunk is dropped and a new GET tried in its place); a failure fails
// the flights not completed yet (readers waiting on them fetch again
// themselves). Reading the run is bounded by Config.RequestTimeout (past
// it the GET is cancelled, the rest of the run fails). When the run has
// read its chunks and the body goes on past them, the body is parked for
// the run that continues it; else (or after any failure) it is closed.
// The chunks then go into the memory LRU and the disk cache's write-behind
// queue before their flights leave the table, so no reader misses both.
// The caller has counted the goroutine in t.workers; done (may be nil)
// runs at its end.
func (t *Tier) runGET(p metadata.TopicPartition, segment metadata.SegmentManifest, first int64, flights []*chunkFlight, attempts int, stream bool, done func()) {
	next := first + int64(len(flights))
	firstKey := chunkKey{segment: segment.SegmentID, index: first}
	handedOn := t.streams.expect(firstKey, chunkKey{segment: segment.SegmentID, index: next}, stream)
	go func() {
		defer t.workers.Done()
		if done != nil {
			defer done()
		}
		// The stream the run before this one reads, if it is to be parked
		// here: waited for (it reads the chunks before this run's).
		waitContext, cancelWait := context.WithTimeout(t.background, t.config.RequestTimeout)
		parked, released := t.streams.take(waitContext, firstKey, stream)
		cancelWait()
		if released {
			// Its reader caught up with the stream this run waited
			// for: a ranged GET of its own chunks instead, in parallel.
			stream = false
		}
		t.flightMu.Lock()
		if t.runStarts[firstKey]--; t.runStarts[firstKey] <= 0 {
			delete(t.runStarts, firstKey)
		}
		t.flightMu.Unlock()
		ctx, cancel := context.WithTimeout(t.background, t.config.RequestTimeout)
		defer cancel()
		chunkBytes := t.config.ChunkBytes
		key := t.layout.segmentKey(p, segment, suffixLog)
		offset := first * chunkBytes
		length := min(int64(len(flights))*chunkBytes, segment.SizeBytes-offset)
		runEnded := func() {}
		if t.onRun != nil {
			runEnded = t.onRun(length)
		}
		if stream {
			length = segment.SizeBytes - offset
		}
		// body is the GET being read; the run's timeout (ctx) cancels it
		// (stopTimeout reports false once it has).
		var body *openStream
		var stopTimeout func() bool
		drop := func() {
			if body != nil {
				stopTimeout()
				body.close()
				body = nil
			}
		}
		failed := func(err error) error {
			if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
				return errors.Join(ctx.Err(), err) // the GET was cancelled by the run's timeout
			}
			return err
		}
		readChunk := func(index int64) (*chunk, error) {
			if err := t.paceFetch(ctx, segment, index); err != nil { // the fetch quota: a chunk at a time
				return nil, err
			}
			ch := t.chunks.get(min(chunkBytes, segment.SizeBytes-index*chunkBytes))
			n, err := io.ReadFull(body.body, ch.data)
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				err = corruptf(key, index*chunkBytes+int64(n), "object ends inside chunk %d", index)
			}
			if err != nil {
				ch.release()
				return nil, failed(err)
			}
			return ch, nil
		}
		var firstChunk *chunk
		var err error
		if parked != nil {
			body, stopTimeout = parked, context.AfterFunc(ctx, parked.cancel)
			if firstChunk, err = readChunk(first); err != nil {
				t.logger.Warn("tiering: a parked GET failed, getting the chunks again", "key", key, "chunk", first, "err", err)
				drop()
			}
		}
		if body == nil {
			t.stats.chunkGets.Add(1)
			err = t.retry(ctx, attempts, "get "+key, func() error {
				drop()
				// Its own context, to outlive this run when it is parked.
				getCtx, getCancel := context.WithCancel(t.background)
				stop := context.AfterFunc(ctx, getCancel)
				reader, err := t.bucket.Get(getCtx, key, offset, length)
				if err != nil {
					stop()
					getCancel()
					return failed(err)
				}
				body, stopTimeout = &openStream{body: reader, cancel: getCancel, end: offset + length}, stop
				firstChunk, err = readChunk(first)
				return err
			})
		}
		if err != nil && t.background.Err() != nil {
			err = errors.Join(ErrClosed, err)
		}
		var prev *chunk // the chunk before, for verifyAhead
		for i, f := range flights {
			index := first + int64(i)
			var ch *chunk
			switch {
			case err != nil:
			case i == 0:
				ch = firstChunk
			default:
				ch, err = readChunk(index)
			}
			if err == nil {
				// Before the chunk is published: checked here, off the
				// reader's path, when it is read-ahead.
				if i == 0 {
					// A read-ahead run waits for the chunk before its own to
					// check the batch across them, except a ranged run in
					// parallel with the one before it (its reader caught up
					// with the store): waiting would make it as slow as that
					// one, and its reader checks what is left unchecked.
					if before := t.previousChunk(ctx, segment, index, f.ahead && stream); before != nil {
						t.verifyAhead(segment, index, ch, before, f.ahead, -1)
						before.release()
					} else {
						t.verifyAhead(segment, index, ch, nil, f.ahead, -1)
					}
				} else {
					t.verifyAhead(segment, index, ch, prev, f.ahead, -1)
				}
				prev = ch
			}
			t.flightMu.Lock()
			if err != nil {
				// Out of the table first, so a reader that retries starts a
				// fetch of its own instead of joining this one.
				f.err = err
				if i > 0 {
					f.err = fmt.Errorf("read-ahead: %w", err)
				}
				if t.chunkFlights[chunkKey{segment: segment.SegmentID, index: index}] == f {
					delete(t.chunkFlights, chunkKey{segment: segment.SegmentID, index: index})
				}
			} else {
				f.chunk = ch
				ch.refs.Add(f.joined)
			}
			close(f.done)
			t.flightMu.Unlock()
			if f.ahead {
				t.releaseAhead(1) // arrived (into memory) or failed: no longer in flight
			}
			if err == nil {
				t.cache.putMemory(chunkKey{segment: segment.SegmentID, index: index}, ch)
			}
		}
		if body != nil {
			// Parked when the run read all its chunks and the GET goes on
			// past them (and the run's timeout did not cancel it), unless
			// the next chunk is cached or on its way already, and no run
			// registered there will look for it: no run would take it.
			nextKey := chunkKey{segment: segment.SegmentID, index: next}
			t.flightMu.Lock()
			_, busy := t.chunkFlights[nextKey]
			wanted := t.runStarts[nextKey] > 0 || !(busy || t.cache.contains(nextKey))
			t.flightMu.Unlock()
			if stopTimeout() && err == nil && next*chunkBytes < body.end && wanted {
				body.key = nextKey
				t.streams.park(body)
			} else {
				body.close()
			}
			body = nil
		}
		handedOn() // the run after this one may take the stream now
		runEnded()
		// The chunks that arrived (the flights before the first that
		// failed, if any) go to the disk cache together: one file.
		var arrived []*chunk
		for _, f := range flights {
			if f.err != nil {
				break
			}
			arrived = append(arrived, f.chunk)
		}
		t.cache.put(ctx, chunkKey{segment: segment.SegmentID, index: first}, arrived...)
		for i, f := range flights {
			if f.err != nil {
				continue
			}
			key := chunkKey{segment: segment.SegmentID, index: first + int64(i)}
			t.flightMu.Lock()
			if t.chunkFlights[key] == f {
				delete(t.chunkFlights, key)
			}
			t.flightMu.Unlock()
			f.chunk.release() // the flight's reference; joiners that found it done retained under flightMu
		}
	}()
}

// share runs fetch once per flightKey at a time and hands its result to
// every caller that asks meanwhile. started reports whether this call
// started fetch (rather than joining a flight).
// after (may be nil) runs once the waiters have the result, before the
// flight ends.
func (t *Tier) share(ctx context.Context, flightKey string, fetch func(context.Context) ([]byte, error), after func([]byte, error)) (data []byte, started bool, err error) {
	t.flightMu.Lock()
	f, joined := t.flights[flightKey]
	if joined {
		// A flight that already failed (its waiters are being answered,
		// it is not removed yet) is not joined: this reader asks the store
		// again rather than taking an old error.
		select {
		case <-f.done:
			joined = f.err == nil
		default:
		}
	}
	if joined {
		t.flightMu.Unlock()
		t.stats.sharedFetches.Add(1)
	} else {
		if t.closed.Load() {
			t.flightMu.Unlock()
			return nil, false, ErrClosed
		}
		f = &flight{done: make(chan struct{})}
		t.flights[flightKey] = f
		t.workers.Add(1)
		t.flightMu.Unlock()
		go func() {
			defer t.workers.Done()
			fetchContext, cancel := context.WithTimeout(t.background, t.config.RequestTimeout)
			defer cancel()
			data, err := fetch(fetchContext)
			if err != nil && t.background.Err() != nil {
				err = errors.Join(ErrClosed, err)
			}
			f.data, f.err = data, err
			close(f.done)
			if after != nil {
				after(data, err)
			}
			t.flightMu.Lock()
			if t.flights[flightKey] == f { // a failed flight may have been replaced
				delete(t.flights, flightKey)
			}
			t.flightMu.Unlock()
		}()
	}
	select {
	case <-f.done:
		return f.data, !joined, f.err
	case <-ctx.Done():
		return nil, !joined, ctx.Err()
	}
}

// offsetIndex returns the segment's decoded offset index, from memory or
// fetched (shared by concurrent readers).
func (t *Tier) offsetIndex(ctx context.Context, p metadata.TopicPartition, segment metadata.SegmentManifest) (offsetIndex, error) {
	if index, ok := t.indexes.get(segment.SegmentID); ok {
		t.stats.indexCacheHits.Add(1)
		return index, nil
	}
	key := t.layout.segmentKey(p, segment, suffixOffsetIndex)
	data, _, err := t.share(ctx, "index "+uuid.UUID(segment.SegmentID).String(), func(ctx context.Context) ([]byte, error) {
		t.stats.indexFetches.Add(1)
		return t.getAll(ctx, key)
	}, nil)
	if err != nil {
		return nil, err
	}
	index, err := decodeOffsetIndex(key, data, segment)
	if err != nil {
		return nil, err
	}
	t.indexes.put(segment.SegmentID, index)
	if t.deleted.contains(segment.SegmentID) {
		t.indexes.remove(segment.SegmentID) // deleted while it was read (deletedSegments)
	}
	return index, nil
}

// readerState is how one read goes: the segment and byte position of the
// batch holding its offset when a previous read told (position -1:
// unknown, look it up in the offset index), and its read-ahead window in
// chunks (0: not a sequential reader).
type readerState struct {
	segment  uuid.UUID
	position int64
	base     int64 // the base offset of the batch at position (when position >= 0)
	window   int64
}

// readerMark is what a reader's last read of a partition left: where it
// started (the offset asked and its batch's byte position), where it
// ended (the next offset and its byte position), and the window for its
// next read.
type readerMark struct {
	segment            uuid.UUID
	offset, position   int64
	base               int64 // of the batch at position
	next, nextPosition int64
	window             int64
	used               uint64 // readerClock when set: the oldest mark goes first
}

// Read-ahead shape: a sequential reader starts with a window of
// initialWindow chunks and doubles it per read up to PrefetchChunks; the
// window ahead is refilled once half of it is missing (at least minRun
// chunks: refillChunks), in one GET, and a GET fetches at least minRun
// chunks (a run ending within minRun chunks of the segment's end takes the
// rest too), so a sequential replay makes about one GET per half window
// (8 chunks with the default 16), at most one per minRun. A reader that
// catches up with its read-ahead (the store serves a GET slower than the
// reader reads) has its window grow on to caughtUpWindows × PrefetchChunks
// while the runs stay refillChunks(PrefetchChunks) long, each a ranged GET
// of its own: several GETs in flight per reader, within the broker's
// ReaderThreads slots and ReadAheadBytes budget. Marks are kept
// for readersPerPartition readers of each partition (consumer groups
// reading it at different offsets), for up to maxReaderPartitions
// partitions (then all are forgotten at once: each reader's next read
// looks its position up again).
const (
	initialWindow       = 8
	minRun              = 4
	caughtUpWindows     = 4
	readersPerPartition = 4
	maxReaderPartitions = 1 << 16
)

// takeReader returns how a read of offset goes: a sequential reader is one
// whose previous read of the partition ended just before offset, detected
// by offsets rather than by read sizes (so consumers with any fetch size
// qualify), or asked for the same offset again (its data did not fit in
// the Fetch response, which is then answered without it) or one inside
// that read (the response served its leading batches only). A read at a
// segment's base offset also counts as sequential (a consumer replaying
// from the start, or crossing into the next segment), its position being
// 0. Anything else starts unknown, with no read-ahead.
func (t *Tier) takeReader(p metadata.TopicPartition, segment metadata.SegmentManifest, offset int64) readerState {
	state := readerState{segment: segment.SegmentID, position: -1, base: -1}
	known := false
	t.sequentialMu.Lock()
	for _, m := range t.readers[p] {
		switch offset {
		case m.next:
			known, state.window = true, m.window
			if m.segment == segment.SegmentID {
				state.position, state.base = m.nextPosition, m.next
			}
		case m.offset:
			known, state.window = true, m.window
			if m.segment == segment.SegmentID {
				state.position, state.base = m.position, m.base
			}
		default:
			if m.segment != segment.SegmentID || offset < m.offset || offset >= m.next {
				continue
			}
			// Inside its previous read, of which the Fetch response
			// served the leading batches (the rest did not fit in what
			// the partitions before it left): the walk goes on from
			// where that read started.
			known, state.window = true, m.window
			state.position, state.base = m.position, m.base
		}
		break
	}
	t.sequentialMu.Unlock()
	switch {
	case t.config.PrefetchChunks < 0:
		state.window = 0
	case (known && state.window == 0) || (!known && offset == segment.BaseOffset):
		state.window = min(initialWindow, int64(t.config.PrefetchChunks))
	}
	if offset == segment.BaseOffset {
		state.position, state.base = 0, segment.BaseOffset
	}
	if state.window > 0 {
		t.stats.sequentialReads.Add(1)
	}
	return state
}

// markReader records what a read of offset left (replacing the reader's
// previous mark).
func (t *Tier) markReader(p metadata.TopicPartition, mark readerMark) {
	t.sequentialMu.Lock()
	defer t.sequentialMu.Unlock()
	if len(t.readers) >= maxReaderPartitions {
		clear(t.readers)
	}
	t.readerClock++
	mark.used = t.readerClock
	marks := t.readers[p]
	kept := marks[:0]
	for _, m := range marks {
		if m.next != mark.offset && m.offset != mark.offset {
			kept = append(kept, m)
		}
	}
	if len(kept) >= readersPerPartition {
		oldest := 0
		for i, m := range kept {
			if m.used < kept[oldest].used {
				oldest = i
			}
		}
		kept = append(kept[:oldest], kept[oldest+1:]...)
	}
	t.readers[p] = append(kept, mark)
}

// afterRead records where a read of batches (at byte position start of
// segment, the first starting at offset base) ended, so that the reader's next read is known sequential and
// needs no index lookup, and for a sequential reader keeps its read-ahead
// window of chunks after the last one read in memory or on its way
// (keepAhead). Once the rest of the segment is, the window goes on into
// the next segment (Config.NextSegment). When the read caught up with
// its read-ahead (caughtUp), the runs it starts do not stream: each is a
// ranged GET of refillChunks(PrefetchChunks) chunks in parallel with
// those in flight, as many as the window's missing chunks make; and
// unless the fetch quota is what holds the reads back (saturated), its
// window grows past PrefetchChunks, up to caughtUpWindows of
// them: under a quota higher than the store's connections deliver, a
// reader still gets several of them.
func (t *Tier) afterRead(p metadata.TopicPartition, segment metadata.SegmentManifest, reader readerState, offset, start, base int64, batches *recordbatch.Batches, caughtUp catchUp) {
	end := start + int64(batches.Len())
	next := readerState{segment: segment.SegmentID, position: end}
	if reader.window > 0 {
		limit := int64(t.config.PrefetchChunks)
		switch caughtUp {
		case caughtUpWithQuota:
			// The reader caught up with the fetch quota's pace, not
			// the store's. One pacer serves all runs, and more of them
			// would only pile up its debt (a throttled broker answers
			// remote partitions without data), so a grown window goes
			// back to PrefetchChunks.
			next.window = min(reader.window*2, limit)
		case caughtUpWithStore:
			next.window = min(reader.window*2, limit*caughtUpWindows)
		default:
			// A window grown while caught up stays until the reader
			// stops.
			next.window = min(reader.window*2, max(limit, reader.window))
		}
	}
	// A reader that is not sequential yet gets a window on its next read
	// if that one continues this one (takeReader).
	t.markReader(p, readerMark{segment: segment.SegmentID, offset: offset, position: start, base: base,
		next: batches.NextOffset(), nextPosition: end, window: next.window})
	if reader.window <= 0 {
		return
	}
	chunkBytes, window := t.config.ChunkBytes, next.window
	lastChunk := (end - 1) / chunkBytes
	segmentLast := (segment.SizeBytes - 1) / chunkBytes
	refill := refillChunks(min(window, int64(t.config.PrefetchChunks)))
	stream := caughtUp == notCaughtUp && !t.caughtUpBefore(window)
	if !t.keepAhead(p, segment, lastChunk+1, min(lastChunk+window, segmentLast), refill, stream) {
		return
	}
	// The part of the window past this segment's end is the next
	// segment's first chunks.
	if beyond := lastChunk + window - segmentLast; beyond > 0 && t.config.NextSegment != nil {
		following, ok := t.config.NextSegment(p, segment)
		if !ok || following.SizeBytes <= 0 {
			return
		}
		t.keepAhead(p, following, 0, min(beyond-1, (following.SizeBytes-1)/chunkBytes), refill, stream)
	}
}

// caughtUpBefore reports whether a sequential reader with a read-ahead
// window of window chunks caught up with its read-ahead before: only
// that grows a window past PrefetchChunks (afterRead). Its runs stay
// ranged GETs in parallel from then on, as a reader that reads faster
// than one connection delivers, instead of going back to one stream
// whenever a read finds its chunks in memory.
func (t *Tier) caughtUpBefore(window int64) bool { return window > int64(t.config.PrefetchChunks) }

// refillChunks is how many chunks of a read-ahead window of window chunks
// must be missing before a GET refills it: half of it, at least minRun.
// Refilling any less would make the GETs as small as the reader's steps
// (a chunk per read with 1 MiB Fetches and 1 MiB chunks): each read moves
// the window's end on by what it read.
func refillChunks(window int64) int64 { return max(minRun, window/2) }

// keepAhead starts what chunks first..last of segment (a sequential
// reader's window) need to be in memory or on their way, and reports
// whether all of them are. A chunk in the disk cache only is read from
// its file into memory in the background (loadAhead), so the reader's
// next reads find it in memory rather than reading the file on their
// path (with O_DIRECT a synchronous device read). A chunk cached nowhere
// is fetched with the run after it (prefetchRun), but only once at least
// refill chunks of the window are missing (from it to last), or the run
// reaches the segment's end. With stream that is one run (one GET per
// segment; nothing after it is looked at then); without, a run of refill
// chunks, and the missing chunks after it go on into more such runs,
// each a ranged GET in parallel. Both come out of the ReadAheadBytes
// budget and the ReaderThreads slots for read-ahead.
func (t *Tier) keepAhead(p metadata.TopicPartition, segment metadata.SegmentManifest, first, last, refill int64, stream bool) bool {
	segmentLast := (segment.SizeBytes - 1) / t.config.ChunkBytes
	missing := false // runs started: the window is not all in memory yet
	for index := first; index <= last; index++ {
		key := chunkKey{segment: segment.SegmentID, index: index}
		t.flightMu.Lock()
		_, inFlight := t.chunkFlights[key]
		t.flightMu.Unlock()
		switch {
		case inFlight || t.cache.inMemory(key):
		case t.cache.contains(key):
			// On disk: load it and the ones on disk after it.
			run := index
			for run < last && t.onDiskOnly(chunkKey{segment: segment.SegmentID, index: run + 1}) {
				run++
			}
			if t.loadAhead(segment, index, run) < run-index+1 {
				return false // the budget or the slots are taken: the rest waits for a later read
			}
			index = run
		default:
			if last-index+1 < refill && last != segmentLast {
				return false
			}
			runLast := last
			if !stream {
				runLast = min(last, index+refill-1)
			}
			runLast = t.runEnd(segment, index, runLast)
			started := t.prefetchRun(p, segment, index, runLast, stream)
			if stream || started < runLast-index+1 {
				return false // one stream; or the budget, the slots or a chunk on its way ends the runs
			}
			missing = true
			index = runLast
		}
	}
	return !missing
}

// onDiskOnly reports whether a chunk is in the disk cache and neither in
// memory nor on its way.
func (t *Tier) onDiskOnly(key chunkKey) bool {
	t.flightMu.Lock()
	_, inFlight := t.chunkFlights[key]
	t.flightMu.Unlock()
	return !inFlight && !t.cache.inMemory(key) && t.cache.contains(key)
}

// loadAhead reads chunks first..last of segment from the disk cache into
// the memory LRU in the background, one after the other, ahead of a
// sequential reader, and returns how many it set out to load (stopping
// before one in memory, on its way or not on disk, and within the
// read-ahead budget and slots). Each is a flight while it loads, so a
// reader that needs it waits for it instead of reading the file too; a
// file that is missing or damaged fails its flight (and leaves the
// cache), and the reader fetches the chunk itself.
func (t *Tier) loadAhead(segment metadata.SegmentManifest, first, last int64) int64 {
	select {
	case t.prefetchSlots <- struct{}{}:
	default:
		return 0 // enough read-ahead in flight already
	}
	granted := t.reserveAhead(last - first + 1)
	var flights []*chunkFlight
	t.flightMu.Lock()
	if !t.closed.Load() {
		for index := first; index < first+granted; index++ {
			key := chunkKey{segment: segment.SegmentID, index: index}
			if _, busy := t.chunkFlights[key]; busy || t.cache.inMemory(key) || !t.cache.contains(key) {
				break
			}
			f := &chunkFlight{done: make(chan struct{}), ahead: true}
			t.chunkFlights[key] = f
			flights = append(flights, f)
		}
	}
	if len(flights) > 0 {
		t.workers.Add(1)
	}
	t.flightMu.Unlock()
	t.releaseAhead(granted - int64(len(flights)))
	if len(flights) == 0 {
		<-t.prefetchSlots
		return 0
	}
	t.stats.diskReadsAhead.Add(int64(len(flights)))
	go func() {
		defer t.workers.Done()
		defer func() { <-t.prefetchSlots }()
		// The chunk before the first, for verifyAhead: in memory, or on
		// its way (a load or GET before this one).
		prev := t.previousChunk(t.background, segment, first, true)
		defer func() {
			if prev != nil {
				prev.release()
			}
		}()
		for i, f := range flights {
			key := chunkKey{segment: segment.SegmentID, index: first + int64(i)}
			t.paceFetch(t.background, segment, key.index) // the fetch quota; only ends early when the tier closes
			// Into the memory LRU too, its batches verified first.
			ch, ok := t.cache.loadDisk(key, func(ch *chunk) { t.verifyAhead(segment, key.index, ch, prev, true, -1) })
			if prev != nil {
				prev.release()
				prev = nil
			}
			if ok {
				prev = ch.retain()
			}
			t.flightMu.Lock()
			if ok {
				f.chunk = ch
				ch.refs.Add(f.joined)
			} else {
				f.err = errNotLoaded
			}
			close(f.done)
			if t.chunkFlights[key] == f {
				delete(t.chunkFlights, key)
			}
			t.flightMu.Unlock()
			t.releaseAhead(1)
			if ok {
				ch.release() // the flight's reference; the memory LRU and the joiners hold theirs
			}
		}
	}()
	return int64(len(flights))
}

// errOnDisk tells a reader that found a load of its chunk on its way
// (useCacheGet) that the load ended meanwhile: the chunk is read from the
// disk cache, not fetched again.
var errOnDisk = errors.New("chunk in the disk cache")

// errNotLoaded fails a load ahead from the disk cache whose file was gone
// or damaged: its readers fetch the chunk themselves.
var errNotLoaded = errors.New("read-ahead: chunk no longer in the disk cache")

// runEnd returns the last chunk of a run first..last: last, or the
// segment's last chunk when fewer than minRun chunks would be left after
// it (fetched now rather than by a small GET later).
func (t *Tier) runEnd(segment metadata.SegmentManifest, first, last int64) int64 {
	segmentLast := (segment.SizeBytes - 1) / t.config.ChunkBytes
	last = max(first, min(last, segmentLast))
	if segmentLast-last < minRun {
		return segmentLast
	}
	return last
}

// prefetchRun fetches chunks first..last (stopping at the first one already
// cached or in flight) in the background, with stream from the segment's
// parked stream or a GET to the segment's end, else (the reader caught up
// with the store) with a ranged GET of its own in parallel with the run
// before it (runGET), without retries (a reader that finds its chunk
// failed fetches it itself; see chunkCursor.chunk). It returns how many
// chunks it started (0: none).
func (t *Tier) prefetchRun(p metadata.TopicPartition, segment metadata.SegmentManifest, first, last int64, stream bool) int64 {
	select {
	case t.prefetchSlots <- struct{}{}:
	default:
		return 0 // enough in flight already
	}
	granted := t.reserveAhead(t.paceAhead(last - first + 1))
	if granted == 0 {
		<-t.prefetchSlots
		return 0 // the budget is taken (or the fetch quota): the reader's next miss fetches what it needs
	}
	t.flightMu.Lock()
	firstKey := chunkKey{segment: segment.SegmentID, index: first}
	if _, busy := t.chunkFlights[firstKey]; busy || t.cache.contains(firstKey) {
		t.flightMu.Unlock()
		t.releaseAhead(granted)
		<-t.prefetchSlots
		return 0
	}
	flights := t.startRunLocked(segment, first, first+granted-1, false)
	t.flightMu.Unlock()
	if flights == nil {
		t.releaseAhead(granted)
		<-t.prefetchSlots
		return 0
	}
	t.releaseAhead(granted - int64(len(flights)))
	t.stats.prefetches.Add(int64(len(flights)))
	t.runGET(p, segment, first, flights, 1, stream, func() { <-t.prefetchSlots })
	return int64(len(flights))
}

// paceAhead returns how many of chunks chunks a read-ahead GET may fetch
// now under the remote fetch quota (Config.FetchMaxBytesPerSecond,
// KIP-956): all of them without one; none while it throttles (the
// chunks already taken would keep a new one waiting more than
// fetchQuotaMaxDelay); else at most a second's worth of it (at least one
// chunk), so that a GET paced a chunk at a time (runGET) is not kept
// open for long.
func (t *Tier) paceAhead(chunks int64) int64 {
	fetch := t.quotas.fetch
	rate := fetch.BytesPerSecond()
	switch {
	case chunks <= 0 || rate <= 0:
		return chunks
	case fetch.ThrottleTime() > 0:
		return 0
	}
	return min(chunks, max(1, rate/t.config.ChunkBytes))
}

// reserveAhead takes up to chunks chunks' worth of the read-ahead budget
// (Config.ReadAheadBytes) and returns how many it got (possibly 0): a
// read-ahead GET is shortened to what is left, so when many readers replay
// at once their windows shrink and the bytes fetched ahead of all of them
// stay within the budget.
func (t *Tier) reserveAhead(chunks int64) int64 {
	if chunks <= 0 {
		return 0
	}
	t.aheadMu.Lock()
	defer t.aheadMu.Unlock()
	granted := min(chunks, (t.config.ReadAheadBytes-t.aheadBytes)/t.config.ChunkBytes)
	if granted <= 0 {
		return 0
	}
	t.aheadBytes += granted * t.config.ChunkBytes
	return granted
}

// releaseAhead returns chunks chunks' worth of the read-ahead budget.
func (t *Tier) releaseAhead(chunks int64) {
	if chunks <= 0 {
		return
	}
	t.aheadMu.Lock()
	defer t.aheadMu.Unlock()
	t.aheadBytes -= chunks * t.config.ChunkBytes
	if t.aheadBytes < 0 {
		panic("tiering: read-ahead budget released more often than taken")
	}
}

func (t *Tier) readAheadInFlight() int64 {
	t.aheadMu.Lock()
	defer t.aheadMu.Unlock()
	return t.aheadBytes
}

// verifyAhead checks the batches lying whole in chunk index of segment
// (ch, not yet handed to readers) and records them on it (chunk.verified)
// with where the batch walk goes on (chunk.tail), so the reads that return
// them skip their CRC-32C (verifyBatches): the read-ahead that brought the
// chunk in pays it, off the Fetch's path. The walk starts at the
// segment's first byte for its first chunk, else where the chunk before
// (prev, may be nil) left it, reading a header that straddles the two
// from both; the batch that starts in prev and ends in ch is checked over
// both and recorded with prev's id (chunk.spanAt, spanPrev), and the batch
// that starts in ch and ends in the chunk after it, when that one is in
// memory, with its id (spanNextAt, spanNext: a chunk read back from its
// file while the next one stayed in memory). Without prev
// (or its tail) nothing is verified. Batches spanning more than two
// chunks are left to the reads. With crc
// false it only finds the tail (a reader waits for this chunk: its read
// checks the CRCs). hint, when in the chunk, is a batch start known from
// elsewhere (where a read's walk starts) to begin at without prev. Where
// the walk starts is only a hint: a batch is recorded only when its own
// header's length frames bytes whose CRC-32C matches, and a read skips
// the CRC only of a batch its own anchored walk finds at a recorded
// position. A batch whose header does not parse or whose CRC
// fails ends the walk: the rest stays unverified, for the read to check
// (and fail) on its path. Only the CRC is done here: a read still ties
// each batch header to its anchor, the chain of offsets and the
// manifest's epochs (read, verifyBatches).
func (t *Tier) verifyAhead(segment metadata.SegmentManifest, index int64, ch, prev *chunk, crc bool, hint int64) {
	chunkBytes := t.config.ChunkBytes
	chunkStart := index * chunkBytes
	chunkEnd := chunkStart + int64(len(ch.data))
	position := int64(0)
	switch {
	case index == 0:
	case (prev == nil || prev.tail < chunkStart-chunkBytes) && hint >= chunkStart && hint < chunkEnd:
		position = hint
	case prev == nil || prev.tail < chunkStart-chunkBytes:
		return
	default:
		position = prev.tail
		if position < chunkStart {
			// The batch at the tail straddles prev and ch (its header
			// may too).
			size, checked := spanning(prev.data[position-(chunkStart-chunkBytes):], ch.data, crc)
			if size <= 0 {
				return
			}
			if checked {
				ch.spanAt, ch.spanPrev = position, prev.id
				t.stats.bytesVerifiedAhead.Add(size)
			}
			position += size
		}
	}
	verified := int64(0)
	for position < chunkEnd && position < segment.SizeBytes && chunkEnd-position >= recordbatch.HeaderSize {
		at := position - chunkStart
		h, err := recordbatch.ParseHeader(ch.data[at:])
		if err != nil {
			t.stats.bytesVerifiedAhead.Add(verified)
			return
		}
		if position+h.Size() > chunkEnd {
			break // straddles into the next chunk: its read checks it
		}
		if crc {
			if !h.CRCMatches(ch.data[at : at+h.Size()]) {
				t.stats.bytesVerifiedAhead.Add(verified)
				return
			}
			ch.verified = append(ch.verified, uint32(at))
			verified += h.Size()
		}
		position += h.Size()
	}
	t.stats.bytesVerifiedAhead.Add(verified)
	ch.tail = position
	if !crc || position >= chunkEnd || position >= segment.SizeBytes {
		return
	}
	// The batch at the tail goes on into the next chunk: when that one is
	// in memory already (kept while this one left it, and is read back
	// now), check it over both, recorded with the next one's id.
	next, ok := t.cache.recent.peek(chunkKey{segment: segment.SegmentID, index: index + 1})
	if !ok {
		return
	}
	defer next.release()
	if size, checked := spanning(ch.data[position-chunkStart:], next.data, true); checked {
		ch.spanNextAt, ch.spanNext = position, next.id
		t.stats.bytesVerifiedAhead.Add(size)
	}
}

// spanning reads the batch that starts with head (the end of one chunk)
// and goes on in next (the chunk after it): its size (0 when its header
// does not parse), and, with crc, whether it ends in next and its CRC-32C
// over both matches.
func spanning(head, next []byte, crc bool) (size int64, checked bool) {
	var raw [recordbatch.HeaderSize]byte
	n := copy(raw[:], head)
	if copy(raw[n:], next) < recordbatch.HeaderSize-n {
		return 0, false
	}
	h, err := recordbatch.ParseHeader(raw[:])
	if err != nil || h.Size() <= int64(len(head)) {
		return 0, false
	}
	rest := h.Size() - int64(len(head)) // the batch's bytes in next
	if !crc || rest > int64(len(next)) {
		return h.Size(), false
	}
	return h.Size(), h.CRCMatches(head, next[:rest])
}

// previousChunk returns chunk index-1 of segment with a reference, from
// the memory LRU or, when wait, from a flight of it (waiting for it to
// arrive: a read-ahead run continues the one before it), or nil.
func (t *Tier) previousChunk(ctx context.Context, segment metadata.SegmentManifest, index int64, wait bool) *chunk {
	if index <= 0 {
		return nil
	}
	key := chunkKey{segment: segment.SegmentID, index: index - 1}
	if ch, ok := t.cache.recent.peek(key); ok {
		return ch
	}
	if !wait {
		return nil
	}
	t.flightMu.Lock()
	f, ok := t.chunkFlights[key]
	t.flightMu.Unlock()
	if !ok {
		return nil
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil
	}
	t.flightMu.Lock()
	if f.err == nil && t.chunkFlights[key] == f {
		ch := f.chunk.retain() // the flight holds its reference while in the table
		t.flightMu.Unlock()
		return ch
	}
	t.flightMu.Unlock()
	if ch, ok := t.cache.recent.peek(key); ok {
		return ch
	}
	return nil
}
