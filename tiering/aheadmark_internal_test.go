package tiering

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/strata-log/strata/metadata"
)

// A run's flights are marked read-ahead (chunkFlight.ahead) before other
// readers can find them in the table: aheadOnItsWay reads the mark under
// flightMu, so a mark written after the flights were published is a data
// race with a reader of the same segment (two consumer groups; caught by
// a concurrent replay under -race). The interleaving is forced: the run is
// held in take by a stream pending at its first chunk (streams.expect),
// so its goroutine takes flightMu only once released, and a second
// reader, started before the run, looks for the run's second chunk until
// it finds it on its way. Run with -race: it fails there (on the reader's
// read of the mark) when the mark is written after flightMu is released.
func TestReadAheadMarkPublishedWithItsFlight(t *testing.T) {
	for _, starter := range []string{"prefetchRun", "fetchChunk"} {
		t.Run(starter, func(t *testing.T) {
			bucket, err := OpenBucket(context.Background(), "mem://")
			if err != nil {
				t.Fatal(err)
			}
			defer bucket.Close()
			const chunk = 4 << 10
			tier, err := New(Config{Bucket: bucket, ChunkBytes: chunk, CacheDir: t.TempDir(), CacheBufferedIO: true})
			if err != nil {
				t.Fatal(err)
			}
			defer tier.Close()
			p := metadata.TopicPartition{Topic: "orders", Partition: 3}
			segment := metadata.SegmentManifest{SegmentID: uuid.New(), BaseOffset: 0, LastOffset: 999, SizeBytes: 64 * chunk}
			// A run reading chunks 0..7 of the segment's stream, to be
			// parked at chunk 8: the run below waits for it in take.
			handedOn := tier.streams.expect(chunkKey{segment: segment.SegmentID, index: 0}, chunkKey{segment: segment.SegmentID, index: 8}, true)
			defer handedOn()

			found := make(chan struct{})
			go func() { // the other reader, looking for chunk 9
				defer close(found)
				for !tier.aheadOnItsWay(chunkKey{segment: segment.SegmentID, index: 9}) {
				}
			}()
			switch starter {
			case "prefetchRun":
				if n := tier.prefetchRun(p, segment, 8, 15, true); n != 8 {
					t.Fatalf("prefetchRun started %d chunks, want 8", n)
				}
			case "fetchChunk":
				go tier.fetchChunk(context.Background(), p, segment, 8, 15, true, true) // fails once handed on: no object
			}
			<-found
		})
	}
}
