package tiering_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/broker/segment"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/tiering"
)

// The chunk cache's files carry no checksum of their own (doc.go: each
// byte a read returns is checked once, by the batch checks, whatever its
// source). A damaged, truncated or missing file must still never reach a
// reader: for a byte damaged in every field of a batch header (those the
// batch CRC covers and those it does not: base offset, length, leader
// epoch, magic, the CRC itself), in a record, or in a header that straddles
// two chunk files, and for a file cut short or removed, and for every way a
// read finds the batch (a sequential reader continuing its previous read,
// a reader asking the same offset again, the offset index, the segment's
// start), the read returns the local log's bytes (read again from the
// store) and the cache counts the damaged chunk.
func TestDamagedCacheFileNeverServed(t *testing.T) {
	local, bucket, segments := uploadedLog(t, 250)
	layout := batchLayout(t, readFile(t, local.sealed[0].LogPath))
	const chunkBytes = 16 << 10

	// The batches damaged: the segment's first (found at its start), one
	// in the middle with more than one record (a read of its second
	// offset goes through the offset index), and one whose header
	// straddles two chunk files (at a chunk size and in a segment chosen
	// for it).
	first := layout[0]
	var middle batchAt
	for _, b := range layout[len(layout)/2:] {
		if b.last > b.base && b.position%chunkBytes < chunkBytes-recordbatch.HeaderSize {
			middle = b
			break
		}
	}
	straddleChunk, straddling, straddleSegment := int64(0), batchAt{}, 0
	for i := range segments {
		for chunk := int64(4 << 10); chunk <= 256<<10 && straddleChunk == 0; chunk += 4 << 10 {
			for _, b := range batchLayout(t, readFile(t, local.sealed[i].LogPath))[1:] {
				if at := b.position % chunk; at > chunk-recordbatch.HeaderSize {
					straddleChunk, straddling, straddleSegment = chunk, b, i
					break
				}
			}
		}
	}
	if middle.size == 0 || straddleChunk == 0 {
		t.Fatalf("no batch to damage: middle %+v, straddling %+v", middle, straddling)
	}

	type damage struct {
		name string
		at   func(b batchAt) int64 // the byte damaged, from the segment's start
		bump byte                  // subtracted from it (a base offset one lower still holds the offset read)
	}
	damages := []damage{
		{"base offset", func(b batchAt) int64 { return b.position + 7 }, 1},
		{"batch length", func(b batchAt) int64 { return b.position + 11 }, 1},
		{"leader epoch", func(b batchAt) int64 { return b.position + 15 }, 1},
		{"magic", func(b batchAt) int64 { return b.position + 16 }, 1},
		{"crc", func(b batchAt) int64 { return b.position + 20 }, 1},
		{"attributes", func(b batchAt) int64 { return b.position + 22 }, 0x10},
		{"last offset delta", func(b batchAt) int64 { return b.position + 26 }, 1},
		{"record", func(b batchAt) int64 { return b.position + b.size - 1 }, 1},
	}
	type target struct {
		name    string
		batch   batchAt
		chunk   int64
		segment int
	}
	targets := []target{{"first batch", first, chunkBytes, 0}, {"middle batch", middle, chunkBytes, 0}, {"header across chunks", straddling, straddleChunk, straddleSegment}}
	modes := []string{"sequential", "same offset again", "offset index"}

	for _, tg := range targets {
		remote, info := segments[tg.segment], local.sealed[tg.segment]
		for _, mode := range modes {
			if mode == "offset index" && tg.batch.last == tg.batch.base {
				continue
			}
			for _, d := range damages {
				t.Run(fmt.Sprintf("%s/%s/%s", tg.name, mode, d.name), func(t *testing.T) {
					testDamagedCacheFile(t, local, bucket, remote, info, tg.chunk, tg.batch, mode, func(tier *tiering.Tier) {
						at := d.at(tg.batch)
						file, offset := chunkFile(t, tier, remote, at/tg.chunk)
						data := readFile(t, file)
						data[offset+at%tg.chunk] -= d.bump
						if err := os.WriteFile(file, data, 0o644); err != nil {
							t.Fatal(err)
						}
					})
				})
			}
			for _, cut := range []string{"truncated", "removed"} {
				t.Run(fmt.Sprintf("%s/%s/file %s", tg.name, mode, cut), func(t *testing.T) {
					testDamagedCacheFile(t, local, bucket, remote, info, tg.chunk, tg.batch, mode, func(tier *tiering.Tier) {
						file, offset := chunkFile(t, tier, remote, (tg.batch.position+tg.batch.size-1)/tg.chunk)
						var err error
						if cut == "truncated" {
							err = os.Truncate(file, offset+(tg.batch.position+tg.batch.size-1)%tg.chunk)
						} else {
							err = os.Remove(file)
						}
						if err != nil {
							t.Fatal(err)
						}
					})
				})
			}
		}
	}
}

// testDamagedCacheFile fills a fresh tier's disk cache (no memory LRU, no
// read-ahead: every read reads the files) as the mode's reader would,
// damages it, reads batch b the mode's way and checks the bytes.
func testDamagedCacheFile(t *testing.T, local *localLog, bucket tiering.Bucket, remote metadata.SegmentManifest, info segment.SegmentInfo, chunkBytes int64, b batchAt, mode string, damage func(tier *tiering.Tier)) {
	dir := t.TempDir()
	tier := newTier(t, tiering.Config{Bucket: bucket, CacheDir: dir, ChunkBytes: chunkBytes, PrefetchChunks: -1, MemoryCacheBytes: -1})
	ctx := context.Background()
	read := func(offset int64, maxBytes int) []byte {
		t.Helper()
		got, err := readBytes(tier, ctx, testPartition, remote, offset, maxBytes)
		if err != nil {
			t.Fatalf("read %d: %v", offset, err)
		}
		if want := local.localRead(t, info, offset, maxBytes); !bytes.Equal(got, want) {
			t.Fatalf("read %d: %s", offset, describeDiff(got, want))
		}
		return got
	}
	var offset int64
	switch mode {
	case "sequential":
		// Everything cached, then one batch per read from the segment's
		// start up to b, whose read continues the one before (or starts
		// the segment).
		read(remote.BaseOffset, 1<<20)
		for offset = remote.BaseOffset; offset < b.base; {
			offset = lastOffsetOf(read(offset, 1)) + 1
		}
	case "same offset again":
		offset = b.base
		read(offset, 1)
	case "offset index":
		// Not a read's start before: the position comes from the index.
		for next := remote.BaseOffset; next <= remote.LastOffset; {
			next = lastOffsetOf(read(next, 64<<10)) + 1
		}
		offset = b.base + 1
	}
	tiering.WaitCacheWrites(tier)
	if files, _ := filepath.Glob(filepath.Join(dir, "*.chunk")); len(files) == 0 {
		t.Fatal("nothing cached")
	}
	damage(tier)
	before := tier.Stats()
	read(offset, 1)
	read(offset, 1) // and again, from what the failed read fetched again
	after := tier.Stats()
	if after.CorruptChunks == before.CorruptChunks {
		t.Fatal("the damaged cache file was not noticed")
	}
	if after.CacheMisses == before.CacheMisses {
		t.Fatal("the damaged chunk was not fetched again")
	}
}

// batchAt is one batch of a .log: its byte position and size and its
// offsets.
type batchAt struct {
	position, size, base, last int64
}

func batchLayout(t *testing.T, data []byte) []batchAt {
	t.Helper()
	var out []batchAt
	for at := int64(0); at < int64(len(data)); {
		h, err := recordbatch.ParseHeader(data[at:])
		if err != nil {
			t.Fatalf("batch at %d: %v", at, err)
		}
		out = append(out, batchAt{position: at, size: h.Size(), base: h.BaseOffset, last: h.LastOffset()})
		at += h.Size()
	}
	return out
}

// chunkFile is the disk cache's file holding chunk index of a segment
// (doc.go: <segment uuid>-<index of its first chunk, 10 digits>.chunk)
// and the chunk's offset in it.
func chunkFile(t *testing.T, tier *tiering.Tier, segment metadata.SegmentManifest, index int64) (string, int64) {
	t.Helper()
	path, offset, ok := tiering.CacheFileOf(tier, segment, index)
	if !ok {
		t.Fatalf("chunk %d is not in the disk cache", index)
	}
	return path, offset
}
