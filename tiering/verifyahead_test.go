package tiering_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

// verifyAheadChunk is the chunk size of the verify-ahead tests: most of
// the test log's batches lie whole in a chunk, some straddle two, and the
// 150 KiB ones span several.
const verifyAheadChunk = 32 << 10

// warmTier returns a tier whose disk cache holds every chunk of the
// segments (a cold replay's), with its memory LRU emptied when
// dropMemory: a warm replay loads its chunks from their files ahead of its
// reads.
func warmTier(t *testing.T, local *localLog, bucket tiering.Bucket, segments []metadata.SegmentManifest, dropMemory bool) (*tiering.Tier, string) {
	t.Helper()
	dir := t.TempDir()
	tier := newTier(t, tiering.Config{Bucket: bucket, CacheDir: dir, ChunkBytes: verifyAheadChunk, PrefetchChunks: 8,
		NextSegment: func(p metadata.TopicPartition, segment metadata.SegmentManifest) (metadata.SegmentManifest, bool) {
			for i, s := range segments[:len(segments)-1] {
				if s.SegmentID == segment.SegmentID {
					return segments[i+1], true
				}
			}
			return metadata.SegmentManifest{}, false
		}})
	// A reader slower than the store (it waits for what each read
	// started): one that catches up with its read-ahead makes parallel
	// runs, which leave the batches spanning them for the reader to check
	// (TestCaughtUpReaderReadsAheadInParallel), so what the tests below
	// count as checked ahead would depend on the machine's timing.
	// Without dropMemory the replay leaves its chunks in memory (a
	// sequential reader's passed chunks leave it once on disk otherwise).
	restore := func() {}
	if !dropMemory {
		restore = tiering.KeepPassedChunks(tier)
	}
	replaySegmentsPaced(t, tier, local, segments, 16<<10, func() { tiering.WaitFetches(tier) })
	if tier.Stats().BatchBytesVerifiedAhead == 0 {
		t.Fatal("the cold replay's read-ahead GETs verified no batch")
	}
	tiering.WaitCacheWrites(tier)
	restore()
	if dropMemory {
		tiering.DropMemoryCache(tier)
	}
	return tier, dir
}

// straddlingBytes returns the bytes of the batches in data (a read's
// result) that span more than two chunks (no load ahead holds them all) or
// end in a chunk up to onPath (read from its file on a reader's path).
func straddlingBytes(t *testing.T, layout map[int64]batchAt, data []byte, onPath int64) int64 {
	t.Helper()
	total := int64(0)
	for at := int64(0); at < int64(len(data)); {
		h, err := recordbatch.ParseHeader(data[at:])
		if err != nil {
			t.Fatal(err)
		}
		b, ok := layout[h.BaseOffset]
		if !ok {
			t.Fatalf("no batch at offset %d in the local log", h.BaseOffset)
		}
		if first, last := b.position/verifyAheadChunk, (b.position+b.size-1)/verifyAheadChunk; last-first > 1 || last <= onPath {
			total += b.size
		}
		at += h.Size()
	}
	return total
}

// A warm sequential replay's batches are CRC-checked by the loads ahead of
// its reads, off their path: after the first read (whose chunks it reads
// from their files itself, so the reads within them check their CRCs),
// a read checks on its path only the CRCs of the batches spanning more
// than two chunks (the 150 KiB ones; a batch spanning two is checked by
// the load of the second, over the first in memory), and returns the
// local log's bytes. Between reads the test waits for the loads ahead, so
// the counts do not depend on timing. Before verifyAhead every read
// checked every batch it returned.
func TestWarmReplayVerifiesAhead(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 250)
	tier, _ := warmTier(t, local, bucket, segments, true)
	ctx := context.Background()
	reads, onPath, straddling, returned := 0, int64(0), int64(0), int64(0)
	firstChunks := int64(-1) // segment 0's chunks read on the first read's path, up to this one
	aheadBefore := tier.Stats().BatchBytesVerifiedAhead
	for i, remote := range segments {
		if i > 0 {
			firstChunks = -1
		}
		positions := map[int64]batchAt{}
		for _, b := range batchLayout(t, readFile(t, local.sealed[i].LogPath)) {
			positions[b.base] = b
		}
		for offset := remote.BaseOffset; offset <= remote.LastOffset; reads++ {
			before := tier.Stats()
			got, err := readBytes(tier, ctx, testPartition, remote, offset, 16<<10)
			if err != nil {
				t.Fatalf("read %d: %v", offset, err)
			}
			if want := local.localRead(t, local.sealed[i], offset, 16<<10); !bytes.Equal(got, want) {
				t.Fatalf("read %d: %s", offset, describeDiff(got, want))
			}
			checked := tier.Stats().BatchBytesCRCOnRead - before.BatchBytesCRCOnRead
			if reads == 0 {
				if checked != int64(len(got)) {
					t.Fatalf("first read: %d of %d bytes CRC-checked on its path, want all (read from the files on its path)", checked, len(got))
				}
				var last batchAt
				for at := int64(0); at < int64(len(got)); {
					h, _ := recordbatch.ParseHeader(got[at:])
					last = positions[h.BaseOffset]
					at += h.Size()
				}
				firstChunks = (last.position + last.size - 1) / verifyAheadChunk
			} else {
				want := straddlingBytes(t, positions, got, firstChunks)
				if checked != want {
					t.Fatalf("read %d (segment %d, offset %d): %d bytes CRC-checked on its path, want %d (the batches straddling chunks)", reads, i, offset, checked, want)
				}
				onPath += checked
				straddling += want
				returned += int64(len(got))
			}
			tiering.WaitCacheWrites(tier) // the loads ahead of the next read are done
			offset = lastOffsetOf(got) + 1
		}
	}
	stats := tier.Stats()
	t.Logf("%d reads, %d bytes after the first: %d CRC-checked on the reads' paths (straddling chunks), %d verified ahead", reads, returned, onPath, stats.BatchBytesVerifiedAhead-aheadBefore)
	if onPath > returned/4 {
		t.Fatalf("%d of %d bytes CRC-checked on the reads' paths: most should be verified ahead", onPath, returned)
	}
	if stats.CorruptChunks != 0 {
		t.Fatalf("%d corrupt chunks in an undamaged replay", stats.CorruptChunks)
	}
}

// A chunk verified ahead is a fact about those bytes in memory, not about
// the chunk's file: once it has left memory, the file read back (by a load
// ahead or by a reader on its path) is a new chunk, and damage in it never
// reaches a reader — a load ahead does not verify the damaged batch (its
// read checks it), a header field the CRC does not cover is still checked
// by every read (anchor, density, the manifest's epochs), and a batch
// spanning two chunks is checked by the read whichever chunk holds the
// damage, also when the chunk it was checked over left memory and was
// read back from its file alone. Each case: a warm tier whose chunks were verified ahead by the
// cold replay's GETs, a byte of one batch damaged in its file, then a read
// of that batch (a sequential replay from the segment's start with its
// loads ahead, or a single read that finds it through the offset index);
// every read returns the local log's bytes, and the damaged chunk is
// counted and fetched again.
func TestDamagedChunkVerifiedAheadNeverServed(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 250)
	remote, info := segments[0], local.sealed[0]
	layout := batchLayout(t, readFile(t, info.LogPath))
	var whole, spanning batchAt
	for _, b := range layout {
		first, last := b.position/verifyAheadChunk, (b.position+b.size-1)/verifyAheadChunk
		switch {
		case whole.size == 0 && first >= 3 && first == last && b.last > b.base:
			whole = b
		case spanning.size == 0 && first >= 3 && last == first+1 && (b.position+recordbatch.HeaderSize)/verifyAheadChunk == first &&
			(first+1)*verifyAheadChunk-b.position > 64:
			spanning = b
		}
	}
	if whole.size == 0 || spanning.size == 0 {
		t.Fatalf("no batch to damage: whole %+v, spanning %+v", whole, spanning)
	}
	cases := []struct {
		name  string
		batch batchAt
		at    int64 // the byte damaged, from the segment's start
		mode  string
	}{
		{"whole batch record byte/loaded ahead", whole, whole.position + whole.size - 1, "sequential"},
		{"whole batch record byte/read on the path", whole, whole.position + whole.size - 1, "offset index"},
		{"whole batch leader epoch/loaded ahead", whole, whole.position + 15, "sequential"},
		{"whole batch base offset/loaded ahead", whole, whole.position + 7, "sequential"},
		{"spanning batch, byte in the second chunk/loaded ahead", spanning, spanning.position + spanning.size - 1, "sequential"},
		{"spanning batch, byte in the first chunk/loaded ahead", spanning, (spanning.position/verifyAheadChunk+1)*verifyAheadChunk - 1, "sequential"},
		{"spanning batch, byte in the second chunk/read on the path", spanning, spanning.position + spanning.size - 1, "offset index"},
		{"spanning batch verified over the first chunk, first chunk alone reloaded damaged", spanning, (spanning.position/verifyAheadChunk+1)*verifyAheadChunk - 1, "first chunk alone reloaded"},
		{"spanning batch verified over the first chunk, first chunk alone reloaded damaged, loaded ahead", spanning, (spanning.position/verifyAheadChunk+1)*verifyAheadChunk - 1, "first chunk alone reloaded, sequential"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			alone := strings.HasPrefix(c.mode, "first chunk alone reloaded")
			tier, _ := warmTier(t, local, bucket, segments, !alone)
			if alone {
				// The second chunk stays in memory, verified ahead over
				// the first as it was; the first is read back from its
				// (damaged) file.
				tiering.DropMemoryChunk(tier, remote.SegmentID, c.batch.position/verifyAheadChunk)
			}
			file, offset := chunkFile(t, tier, remote, c.at/verifyAheadChunk)
			data := readFile(t, file)
			data[offset+c.at%verifyAheadChunk]--
			if err := os.WriteFile(file, data, 0o644); err != nil {
				t.Fatal(err)
			}
			before := tier.Stats()
			read := func(offset int64, maxBytes int) []byte {
				t.Helper()
				got, err := readBytes(tier, context.Background(), testPartition, remote, offset, maxBytes)
				if err != nil {
					t.Fatalf("read %d: %v", offset, err)
				}
				if want := local.localRead(t, info, offset, maxBytes); !bytes.Equal(got, want) {
					t.Fatalf("read %d: %s", offset, describeDiff(got, want))
				}
				return got
			}
			switch c.mode {
			case "sequential", "first chunk alone reloaded, sequential":
				for offset := remote.BaseOffset; offset <= c.batch.last; {
					offset = lastOffsetOf(read(offset, 16<<10)) + 1
					tiering.WaitCacheWrites(tier) // its loads ahead are done: the damaged chunk is loaded ahead, not read on the path
				}
				if after := tier.Stats(); after.CacheDiskReadsAhead == before.CacheDiskReadsAhead {
					t.Fatal("nothing loaded ahead")
				}
			case "offset index", "first chunk alone reloaded":
				read(c.batch.base, 1)
				read(c.batch.base, 1) // and again, from what the failed read fetched again
			}
			after := tier.Stats()
			if after.CorruptChunks == before.CorruptChunks {
				t.Fatal("the damaged cache file was not noticed")
			}
			if after.CacheMisses == before.CacheMisses {
				t.Fatal("the damaged chunk was not fetched again")
			}
		})
	}
}

// A chunk that left memory while the chunk after it stayed (the memory
// LRU lets chunks go in any order) is checked, when loaded back ahead of
// a reader, over that next chunk too: the batch spanning the two is not
// checked again on the read's path. A cold replay (kept from dropping the
// chunks it passes: KeepPassedChunks) leaves every chunk in memory, verified ahead by its GETs (but the first, which the reader
// waited for); one chunk is dropped; a second replay of the segment
// checks on its path only the batches of that first chunk and those
// spanning more than two chunks.
func TestReloadedChunkVerifiedOverTheNext(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 250)
	remote, info := segments[0], local.sealed[0]
	layout := batchLayout(t, readFile(t, info.LogPath))
	var spanning batchAt
	for _, b := range layout {
		if first, last := b.position/verifyAheadChunk, (b.position+b.size-1)/verifyAheadChunk; first >= 3 && last == first+1 {
			spanning = b
			break
		}
	}
	if spanning.size == 0 {
		t.Fatal("no batch spanning two chunks")
	}
	tier, _ := warmTier(t, local, bucket, segments, false)
	tiering.DropMemoryChunk(tier, remote.SegmentID, spanning.position/verifyAheadChunk)
	want := int64(0)
	for _, b := range layout {
		if first, last := b.position/verifyAheadChunk, (b.position+b.size-1)/verifyAheadChunk; last == 0 || last-first > 1 {
			want += b.size
		}
	}
	before := tier.Stats()
	sawSpanning := false
	for offset := remote.BaseOffset; offset <= remote.LastOffset; {
		got, err := readBytes(tier, context.Background(), testPartition, remote, offset, 16<<10)
		if err != nil {
			t.Fatalf("read %d: %v", offset, err)
		}
		if w := local.localRead(t, info, offset, 16<<10); !bytes.Equal(got, w) {
			t.Fatalf("read %d: %s", offset, describeDiff(got, w))
		}
		sawSpanning = sawSpanning || (offset <= spanning.base && lastOffsetOf(got) >= spanning.base)
		tiering.WaitCacheWrites(tier)
		offset = lastOffsetOf(got) + 1
	}
	after := tier.Stats()
	if !sawSpanning {
		t.Fatal("the replay did not return the spanning batch")
	}
	if after.CacheDiskReadsAhead-before.CacheDiskReadsAhead != 1 || after.CacheDiskReads != before.CacheDiskReads {
		t.Fatalf("%d chunks loaded ahead and %d read on the path, want the dropped one loaded ahead", after.CacheDiskReadsAhead-before.CacheDiskReadsAhead, after.CacheDiskReads-before.CacheDiskReads)
	}
	if got := after.BatchBytesCRCOnRead - before.BatchBytesCRCOnRead; got != want {
		t.Fatalf("%d bytes CRC-checked on the reads' paths, want %d (the first chunk's batches and those spanning more than two chunks; the batch spanning the dropped chunk and the next is %d bytes)", got, want, spanning.size)
	}
}
