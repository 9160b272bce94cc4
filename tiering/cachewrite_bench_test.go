package tiering

import (
	"context"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
)

// BenchmarkChunkCacheWrites writes 1 MiB chunks through a full disk cache
// (through the page cache; 64 chunks of room, so each chunk written
// evicts one): the steady state of a cache smaller than what is replayed.
// cpu-ms/MiB is this process's CPU time (the writer's syscalls) per MiB
// written.
func BenchmarkChunkCacheWrites(b *testing.B) {
	const chunkBytes, room, perOp = 1 << 20, 64, 64
	pool := newChunkPool(chunkBytes, perOp)
	cache, err := newChunkCache(chunkCacheConfig{dir: b.TempDir(), capacity: room * chunkBytes, bufferedIO: true, logger: slog.New(slog.DiscardHandler)}, pool, &stats{})
	if err != nil {
		b.Fatal(err)
	}
	defer cache.close()
	segment := uuid.New()
	index := int64(0)
	write := func(n int) {
		for range n {
			ch := pool.get(chunkBytes)
			for i := 0; i < len(ch.data); i += 4096 {
				ch.data[i] = byte(index)
			}
			cache.put(context.Background(), chunkKey{segment: segment, index: index}, ch)
			ch.release()
			index++
		}
		cache.waitWrites()
	}
	write(2 * room) // fill, then evict once around
	b.SetBytes(perOp * chunkBytes)
	b.ResetTimer()
	start := selfCPU()
	for range b.N {
		write(perOp)
	}
	b.ReportMetric(float64((selfCPU()-start).Microseconds())/1000/float64(perOp*b.N), "cpu-ms/MiB")
}

// selfCPU is the CPU time (user and system) this process has used.
func selfCPU() time.Duration {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
}
