package segment

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/strata-log/strata/broker/recordbatch"
)

// BenchmarkCompact measures one cleaner pass over a 64 MiB log of 100-byte
// values on 10,000 keys (batches of 50 records, lz4 and uncompressed),
// next to the same-run reference of reading the whole log once with Read.
// Reported: cleaned MB/s (of the log before the pass), the read reference
// in MB/s and the ratio between them.
//
//	go test -run '^$' -bench Compact -benchtime 3x ./broker/segment
func BenchmarkCompact(b *testing.B) {
	for _, codec := range []recordbatch.Codec{recordbatch.None, recordbatch.LZ4} {
		b.Run(codec.String(), func(b *testing.B) {
			const logBytes = 64 << 20
			var cleanSeconds, readSeconds, bytes float64
			for range b.N {
				b.StopTimer()
				dir := b.TempDir()
				cfg := Config{SegmentBytes: 8 << 20, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
				l, err := Open(dir, 0, cfg)
				if err != nil {
					b.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(1, 2))
				value := make([]byte, 100)
				now := time.Now().UnixMilli()
				for l.Size() < logBytes {
					records := make([]recordbatch.Record, 50)
					for i := range records {
						for j := range value {
							value[j] = byte(rng.Uint32())
						}
						records[i] = recordbatch.Record{Key: fmt.Appendf(nil, "key-%05d", rng.IntN(10000)), Value: append([]byte(nil), value...), Timestamp: now}
					}
					batch, err := recordbatch.Build(recordbatch.BuildOptions{Codec: codec}, records)
					if err != nil {
						b.Fatal(err)
					}
					data, descriptors := appendRequest(batch)
					if _, _, err := l.Append(data, descriptors); err != nil {
						b.Fatal(err)
					}
				}
				size := l.Size()

				start := time.Now()
				for offset, end := l.StartOffset(), l.EndOffset(); offset < end; {
					data, err := l.Read(offset, 1<<20, end, true)
					if err != nil {
						b.Fatal(err)
					}
					spans, err := recordbatch.Split(data)
					if err != nil || len(spans) == 0 {
						b.Fatalf("read at %d: %v", offset, err)
					}
					last := spans[len(spans)-1]
					h, _ := recordbatch.ParseHeader(data[last.Position:])
					offset = h.LastOffset() + 1
				}
				readSeconds += time.Since(start).Seconds()

				b.StartTimer()
				start = time.Now()
				stats, err := l.Compact(CompactOptions{Force: true})
				cleanSeconds += time.Since(start).Seconds()
				b.StopTimer()
				if err != nil || stats.RecordsRemoved == 0 {
					b.Fatalf("compact: %+v %v", stats, err)
				}
				bytes += float64(size)
				l.Close()
			}
			cleanMBs, readMBs := bytes/1e6/cleanSeconds, bytes/1e6/readSeconds
			b.ReportMetric(cleanMBs, "clean-MB/s")
			b.ReportMetric(readMBs, "read-MB/s")
			b.ReportMetric(cleanMBs/readMBs, "clean/read")
		})
	}
}
