package tiering

import (
	"context"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
)

// BenchmarkChunkCacheWrites writes 1 MiB chunks to the disk cache through
// the page cache; cpu-ms/MiB is this process's CPU time (the writer's
// syscalls) per MiB written. full: a cache with room for 64 chunks, so
// each chunk written evicts one (the steady state of a cache smaller than
// what is replayed). restarted: a new cache (a restarted broker) on a
// directory an earlier one filled with 64 chunks, filled again.
func BenchmarkChunkCacheWrites(b *testing.B) {
	const chunkBytes, room = 1 << 20, 64
	pool := newChunkPool(chunkBytes, room)
	open := func(b *testing.B, dir string) *chunkCache {
		cache, err := newChunkCache(chunkCacheConfig{dir: dir, capacity: room * chunkBytes, bufferedIO: true, logger: slog.New(slog.DiscardHandler)}, pool, &stats{})
		if err != nil {
			b.Fatal(err)
		}
		return cache
	}
	segment := uuid.New()
	index := int64(0)
	write := func(cache *chunkCache, n int) {
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
	b.Run("full", func(b *testing.B) {
		cache := open(b, b.TempDir())
		defer cache.close()
		write(cache, 2*room) // fill, then evict once around
		b.SetBytes(room * chunkBytes)
		b.ResetTimer()
		start := selfCPU()
		for range b.N {
			write(cache, room)
		}
		b.ReportMetric(float64((selfCPU()-start).Microseconds())/1000/float64(room*b.N), "cpu-ms/MiB")
	})
	b.Run("restarted", func(b *testing.B) {
		dir := b.TempDir()
		earlier := open(b, dir)
		write(earlier, room)
		earlier.close()
		b.SetBytes(room * chunkBytes)
		b.ResetTimer()
		cpu := time.Duration(0)
		for range b.N {
			cache := open(b, dir)
			start := selfCPU()
			write(cache, room)
			cpu += selfCPU() - start
			cache.close()
		}
		b.ReportMetric(float64(cpu.Microseconds())/1000/float64(room*b.N), "cpu-ms/MiB")
	})
}

// selfCPU is the CPU time (user and system) this process has used.
func selfCPU() time.Duration {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
}
