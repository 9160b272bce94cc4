package tiering

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/google/uuid"

	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/metadata"
)

// Read returns whole record batches of a remote segment, starting with the
// batch that holds offset, byte-identical to the segment's local .log. The
// first batch comes whole even when it is larger than maxBytes (KIP-74);
// later ones are added while the total stays within maxBytes. A read never
// crosses into the next segment: the caller moves on with the manifest.
//
// The offset index is fetched once and cached in memory; the .log is read
// in aligned chunks (Config.ChunkBytes) through the on-disk chunk cache;
// readers of one chunk share one GET; a sequential reader has the
// following chunks prefetched. Every returned batch is checked (framing,
// CRC-32C, dense offsets) before it is returned.
//
// Errors: ErrOffsetOutOfRange when offset is outside the segment;
// ErrUnavailable (retriable) when the store cannot be reached; ErrNotFound
// when the segment's objects are gone; a *CorruptError when the objects
// hold bytes that fail the checks. No error ever comes with data.
func (t *Tier) Read(ctx context.Context, p metadata.TopicPartition, segment metadata.SegmentManifest, offset int64, maxBytes int) ([]byte, error) {
	if t.closed.Load() {
		return nil, ErrClosed
	}
	if offset < segment.BaseOffset || offset > segment.LastOffset {
		return nil, fmt.Errorf("%w: offset %d not in remote segment %d..%d of %s", ErrOffsetOutOfRange, offset, segment.BaseOffset, segment.LastOffset, p)
	}
	data, start, err := t.read(ctx, p, segment, offset, maxBytes, true)
	if IsCorrupt(err) {
		// The cache may hold a damaged chunk that its checksum did not
		// catch (written wrong); read the range straight from the store.
		t.logger.Warn("tiering: remote read failed its checks, reading again from the store", "segment", uuid.UUID(segment.SegmentID), "offset", offset, "err", err)
		data, start, err = t.read(ctx, p, segment, offset, maxBytes, false)
	}
	if err != nil {
		return nil, fmt.Errorf("tiering: read offset %d of %s (segment %s): %w", offset, p, uuid.UUID(segment.SegmentID), err)
	}
	t.afterRead(p, segment, start, start+int64(len(data)))
	return data, nil
}

// read locates and returns the batches; useCache false bypasses (and
// refreshes) the chunk cache. When what it read fails a check, the offset
// index and the chunks it used are dropped from the caches.
func (t *Tier) read(ctx context.Context, p metadata.TopicPartition, segment metadata.SegmentManifest, offset int64, maxBytes int, useCache bool) (_ []byte, _ int64, err error) {
	index, err := t.offsetIndex(ctx, p, segment)
	if err != nil {
		return nil, 0, err
	}
	cursor := &chunkCursor{tier: t, ctx: ctx, partition: p, segment: segment, useCache: useCache, chunks: make(map[int64][]byte)}
	defer func() {
		if IsCorrupt(err) {
			t.indexes.remove(segment.SegmentID)
			for index := range cursor.chunks {
				t.cache.remove(chunkKey{segment: segment.SegmentID, index: index})
			}
		}
	}()
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

	// Walk from the indexed position to the batch holding offset.
	start := index.lookup(offset - segment.BaseOffset)
	var first recordbatch.Header
	for {
		if start >= segment.SizeBytes {
			return nil, 0, corruptf(logKey, start, "offset %d not found before the end", offset)
		}
		h, err := header(start)
		if err != nil {
			return nil, 0, err
		}
		if h.LastOffset() >= offset {
			if h.BaseOffset > offset {
				return nil, 0, corruptf(logKey, start, "batch %d..%d follows a gap before %d", h.BaseOffset, h.LastOffset(), offset)
			}
			first = h
			break
		}
		start += h.Size()
	}
	// Add following batches while they fit.
	end := start + first.Size()
	for end-start+recordbatch.HeaderSize <= int64(maxBytes) && end < segment.SizeBytes {
		h, err := header(end)
		if err != nil {
			return nil, 0, err
		}
		if end-start+h.Size() > int64(maxBytes) {
			break
		}
		end += h.Size()
	}
	out, err := cursor.copy(start, end-start)
	if err != nil {
		return nil, 0, err
	}
	if err := verifyBatches(logKey, start, out, offset, segment.LastOffset); err != nil {
		return nil, 0, err
	}
	return out, start, nil
}

// verifyBatches checks what a read is about to return: whole batches with
// valid headers and CRCs, the first holding offset, offsets dense, none
// past lastOffset.
func verifyBatches(key string, position int64, data []byte, offset, lastOffset int64) error {
	next := int64(-1)
	for at := 0; at < len(data); {
		h, err := recordbatch.ParseHeader(data[at:])
		if err != nil {
			return corruptf(key, position+int64(at), "%v", err)
		}
		if int64(len(data)-at) < h.Size() {
			return corruptf(key, position+int64(at), "batch cut short")
		}
		batch := data[at : at+int(h.Size())]
		if err := recordbatch.VerifyChecksum(batch); err != nil {
			return corruptf(key, position+int64(at), "%v", err)
		}
		switch {
		case next < 0 && (h.BaseOffset > offset || h.LastOffset() < offset):
			return corruptf(key, position, "first batch %d..%d does not hold offset %d", h.BaseOffset, h.LastOffset(), offset)
		case next >= 0 && h.BaseOffset != next:
			return corruptf(key, position+int64(at), "batch base offset %d, want %d", h.BaseOffset, next)
		case h.LastOffset() > lastOffset:
			return corruptf(key, position+int64(at), "batch ends at %d, past the segment's last offset %d", h.LastOffset(), lastOffset)
		}
		next = h.LastOffset() + 1
		at += int(h.Size())
	}
	return nil
}

// chunkCursor serves byte ranges of one segment's .log from its chunks,
// keeping the chunks it loaded for the duration of one read.
type chunkCursor struct {
	tier      *Tier
	ctx       context.Context
	partition metadata.TopicPartition
	segment   metadata.SegmentManifest
	useCache  bool
	chunks    map[int64][]byte // loaded chunks by index
}

// copy returns a fresh copy of length bytes at position.
func (c *chunkCursor) copy(position, length int64) ([]byte, error) {
	chunkBytes := c.tier.config.ChunkBytes
	if position/chunkBytes != (position+length-1)/chunkBytes {
		return c.bytes(position, length) // assembled into a new slice
	}
	data, err := c.bytes(position, length)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), data...), nil
}

// bytes returns length bytes at position; the slice may alias a chunk.
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
	out := make([]byte, 0, length)
	for index := firstChunk; index <= lastChunk; index++ {
		chunk, err := c.chunk(index)
		if err != nil {
			return nil, err
		}
		from, to := max(position-index*chunkBytes, 0), min(position+length-index*chunkBytes, int64(len(chunk)))
		if from > to {
			return nil, corruptf(c.tier.layout.segmentKey(c.partition, c.segment, suffixLog), position, "chunk %d is %d bytes, short", index, len(chunk))
		}
		out = append(out, chunk[from:to]...)
	}
	if int64(len(out)) != length {
		return nil, corruptf(c.tier.layout.segmentKey(c.partition, c.segment, suffixLog), position, "got %d of %d bytes", len(out), length)
	}
	return out, nil
}

func (c *chunkCursor) chunk(index int64) ([]byte, error) {
	if chunk, ok := c.chunks[index]; ok {
		return chunk, nil
	}
	key := chunkKey{segment: c.segment.SegmentID, index: index}
	var chunk []byte
	if cached, ok := c.useCacheGet(key); ok {
		c.tier.stats.cacheHits.Add(1)
		chunk = cached
	} else {
		c.tier.stats.cacheMisses.Add(1)
		var started bool
		var err error
		chunk, started, err = c.tier.fetchChunk(c.ctx, c.partition, c.segment, index)
		if err != nil && !started && c.ctx.Err() == nil {
			// Joined someone else's fetch (a prefetch without retries) that
			// failed: fetch on our own account, with the read retries.
			chunk, _, err = c.tier.fetchChunk(c.ctx, c.partition, c.segment, index)
		}
		if err != nil {
			return nil, err
		}
	}
	c.chunks[index] = chunk
	return chunk, nil
}

func (c *chunkCursor) useCacheGet(key chunkKey) ([]byte, bool) {
	if !c.useCache {
		return nil, false
	}
	return c.tier.cache.get(key)
}

// flight is one GET shared by every reader that needs its result.
type flight struct {
	done chan struct{} // closed when data and err are set
	data []byte
	err  error
}

// fetchChunk returns a chunk from the store, joining a GET of the same
// chunk already in flight. The GET runs detached from ctx (bounded by
// Config.RequestTimeout and Close), so one reader giving up does not fail
// the others; the result goes into the cache. started reports that this
// call started the GET rather than joining one.
func (t *Tier) fetchChunk(ctx context.Context, p metadata.TopicPartition, segment metadata.SegmentManifest, index int64) ([]byte, bool, error) {
	chunkBytes := t.config.ChunkBytes
	offset := index * chunkBytes
	length := min(chunkBytes, segment.SizeBytes-offset)
	key := t.layout.segmentKey(p, segment, suffixLog)
	chunk := chunkKey{segment: segment.SegmentID, index: index}
	return t.share(ctx, chunkFlightKey(segment, index), func(ctx context.Context) ([]byte, error) {
		data, err := t.getRange(ctx, key, offset, length)
		if err == nil {
			t.cache.putMemory(chunk, data)
		}
		return data, err
	}, func(data []byte, err error) {
		// After the waiters have their bytes, and before the flight ends
		// (so no reader misses both the flight and the cache).
		if err == nil {
			t.cache.put(chunk, data)
		}
	})
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

// getRange reads length bytes at offset of key with the read retry policy;
// a short object is corrupt (the manifest says how big it is).
func (t *Tier) getRange(ctx context.Context, key string, offset, length int64) ([]byte, error) {
	var data []byte
	err := t.retry(ctx, t.config.ReadAttempts, "get "+key, func() error {
		reader, err := t.bucket.Get(ctx, key, offset, length)
		if err != nil {
			return err
		}
		defer reader.Close()
		data = make([]byte, length)
		n, err := io.ReadFull(reader, data)
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return corruptf(key, offset+int64(n), "object ends %d bytes into a %d-byte range", n, length)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return data, nil
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
	return index, nil
}

// afterRead records where a read ended and, for a sequential reader (one
// that starts where its previous read of the segment ended, or at the
// segment's start), keeps up to PrefetchChunks chunks after the last one
// it read cached or in flight. Prefetches are coalesced: nothing is fetched
// until the chunks ahead fall to half the window, then the missing run is
// fetched with one ranged GET, delivered chunk by chunk as it streams in.
func (t *Tier) afterRead(p metadata.TopicPartition, segment metadata.SegmentManifest, start, end int64) {
	t.sequentialMu.Lock()
	previousEnd, known := t.lastReadEnd[segment.SegmentID]
	if len(t.lastReadEnd) >= 4096 {
		clear(t.lastReadEnd)
	}
	t.lastReadEnd[segment.SegmentID] = end
	t.sequentialMu.Unlock()
	if t.config.PrefetchChunks < 0 || !(start == 0 || (known && start == previousEnd)) {
		return
	}
	chunkBytes, window := t.config.ChunkBytes, int64(t.config.PrefetchChunks)
	lastChunk := max(end-1, start) / chunkBytes
	windowEnd := min(lastChunk+window, (segment.SizeBytes-1)/chunkBytes)
	for index := lastChunk + 1; index <= windowEnd; index++ {
		if t.chunkPresent(segment, index) {
			continue
		}
		if index <= lastChunk+max(window/2, 1) {
			t.prefetchRun(p, segment, index, windowEnd)
		}
		return
	}
}

// chunkPresent reports whether a chunk is cached or being fetched.
func (t *Tier) chunkPresent(segment metadata.SegmentManifest, index int64) bool {
	if t.cache.contains(chunkKey{segment: segment.SegmentID, index: index}) {
		return true
	}
	t.flightMu.Lock()
	defer t.flightMu.Unlock()
	_, inFlight := t.flights[chunkFlightKey(segment, index)]
	return inFlight
}

func chunkFlightKey(segment metadata.SegmentManifest, index int64) string {
	return fmt.Sprintf("chunk %s %d", uuid.UUID(segment.SegmentID), index)
}

// prefetchRun fetches chunks first..last (stopping at the first one already
// cached or in flight) with one ranged GET in the background. Each chunk
// is a flight of its own, completed as soon as its bytes have arrived, so
// a reader waits only for its chunk. A failed prefetch fails its flights;
// readers waiting on them fetch again themselves (see chunkCursor.chunk).
func (t *Tier) prefetchRun(p metadata.TopicPartition, segment metadata.SegmentManifest, first, last int64) {
	select {
	case t.prefetchSlots <- struct{}{}:
	default:
		return // enough in flight already
	}
	var flights []*flight
	var flightKeys []string
	t.flightMu.Lock()
	for index := first; index <= last && !t.closed.Load(); index++ {
		key := chunkFlightKey(segment, index)
		if _, busy := t.flights[key]; busy || (index > first && t.cache.contains(chunkKey{segment: segment.SegmentID, index: index})) {
			break
		}
		f := &flight{done: make(chan struct{})}
		t.flights[key] = f
		flights, flightKeys = append(flights, f), append(flightKeys, key)
	}
	if len(flights) == 0 {
		t.flightMu.Unlock()
		<-t.prefetchSlots
		return
	}
	t.workers.Add(1)
	t.flightMu.Unlock()
	t.stats.prefetches.Add(int64(len(flights)))
	go func() {
		defer t.workers.Done()
		defer func() { <-t.prefetchSlots }()
		ctx, cancel := context.WithTimeout(t.background, t.config.RequestTimeout)
		defer cancel()
		chunkBytes := t.config.ChunkBytes
		key := t.layout.segmentKey(p, segment, suffixLog)
		offset := first * chunkBytes
		reader, err := t.bucket.Get(ctx, key, offset, min(int64(len(flights))*chunkBytes, segment.SizeBytes-offset))
		for i, f := range flights {
			index := first + int64(i)
			if err == nil {
				data := make([]byte, min(chunkBytes, segment.SizeBytes-index*chunkBytes))
				var n int
				if n, err = io.ReadFull(reader, data); errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
					err = corruptf(key, index*chunkBytes+int64(n), "object ends inside chunk %d", index)
				}
				if err == nil {
					f.data = data
					t.cache.putMemory(chunkKey{segment: segment.SegmentID, index: index}, data)
				}
			}
			if err != nil {
				// Out of the table first, so a reader that retries
				// starts a fetch of its own instead of joining this one.
				f.err = fmt.Errorf("prefetch: %w", err)
				t.flightMu.Lock()
				delete(t.flights, flightKeys[i])
				t.flightMu.Unlock()
			}
			close(f.done)
		}
		if reader != nil {
			reader.Close()
		}
		for i, f := range flights {
			if f.err != nil {
				continue
			}
			t.cache.put(chunkKey{segment: segment.SegmentID, index: first + int64(i)}, f.data)
			t.flightMu.Lock()
			delete(t.flights, flightKeys[i])
			t.flightMu.Unlock()
		}
	}()
}
