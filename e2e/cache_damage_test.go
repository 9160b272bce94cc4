//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDamagedChunkCacheNeverReachesConsumers: the broker's chunk cache
// files carry no checksum of their own (tiering/doc.go); a consumer must
// still never get a damaged byte from them. A tiered topic larger than the
// in-memory chunk LRU (64 MiB) is replayed once (filling the disk cache),
// every chunk in the cache files is then damaged — a segment's first chunk
// in the first batch's base offset, leader epoch or a record byte, or cut
// short (and the file's later chunks with it), a later chunk in its
// middle byte — and a second replay by a franz-go
// consumer, which reads back from those files the chunks the memory LRU
// no longer holds, gets every record at its offset with its value; the
// broker counts the damaged chunks it read and fetches them again from
// the bucket.
func TestDamagedChunkCacheNeverReachesConsumers(t *testing.T) {
	const (
		segmentBytes = 8 << 20
		localBytes   = 8 << 20
		recordSize   = 16 << 10
		records      = 6 * 1024 // 96 MiB
	)
	b := startBroker(t, "--remote-log-manager-task-interval-ms", "200", "--log-retention-check-interval-ms", "300")
	g := produceTiered(t, b, segmentBytes, localBytes, recordSize, records)
	topic := g.topic
	eventually(t, 60*time.Second, "everything but the local window tiered", func() error {
		if local := localLogBytes(t, b.dataDir, topic, 0); local > localBytes+2*segmentBytes {
			return fmt.Errorf("local log holds %d bytes", local)
		}
		return nil
	})

	replay := func() {
		t.Helper()
		g.replayWith(t, []string{b.addr}, 0, records)
	}
	replay() // cold: fills the disk cache behind the reader

	cacheDir := filepath.Join(b.dataDir, "remote-cache")
	var files []string
	var cached int64
	eventually(t, 30*time.Second, "the cold replay's chunks written to the disk cache", func() error {
		entries, err := os.ReadDir(cacheDir)
		if err != nil {
			return err
		}
		files, cached = files[:0], 0
		for _, e := range entries {
			if strings.Contains(e.Name(), ".chunk.tmp") {
				return fmt.Errorf("%s being written", e.Name())
			}
			if strings.HasSuffix(e.Name(), ".chunk") {
				files = append(files, filepath.Join(cacheDir, e.Name()))
				if info, err := e.Info(); err == nil {
					cached += info.Size()
				}
			}
		}
		// A file holds the chunks of one GET (one or more).
		if remote := metricValue(t, b, fmt.Sprintf(`strata_tiering_remote_fetch_bytes_total{topic=%q}`, topic)); float64(cached) < remote-(1<<20) {
			return fmt.Errorf("%d bytes in chunk files for %.0f bytes replayed from the bucket", cached, remote)
		}
		return nil
	})
	if cached < 64<<20 {
		t.Fatalf("%d bytes in chunk files: the replay fits in the memory LRU, the files would not be read back", cached)
	}
	const chunkBytes = 1 << 20 // the broker's default chunk size
	for i, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		// Every chunk the file holds (one GET's: back to back) is damaged.
		from := 0
		if strings.HasSuffix(file, "-0000000000.chunk") {
			from = chunkBytes
			switch i % 4 { // a segment's first chunk starts with a batch header
			case 0:
				data[7]-- // the first batch's base offset, one lower: it still holds the offset asked
			case 1:
				data[15] ^= 1 // its partition leader epoch (not covered by the batch CRC)
			case 2:
				data[100]++ // a record byte
			case 3:
				data = data[:min(len(data), chunkBytes)/2] // cut short
			}
		}
		for at := from; at < len(data); at += chunkBytes {
			data[at+min(len(data)-at, chunkBytes)/2]++ // a later chunk: a byte in its middle
		}
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	corrupt := metricValue(t, b, "strata_tiering_cache_corrupt_chunks_total")
	gets := metricValue(t, b, "strata_tiering_bucket_gets_total")
	replay() // warm: reads the damaged files back
	corrupt = metricValue(t, b, "strata_tiering_cache_corrupt_chunks_total") - corrupt
	gets = metricValue(t, b, "strata_tiering_bucket_gets_total") - gets
	t.Logf("%d cache files damaged; the warm replay found %v damaged chunks and made %v GETs", len(files), corrupt, gets)
	if corrupt == 0 || gets == 0 {
		t.Fatalf("the warm replay found %v damaged chunks and made %v GETs: the damaged files were not read", corrupt, gets)
	}
}
