package tiering_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-log/strata/tiering"
)

// A sequential replay whose read-ahead keeps ahead of it waits for the
// store only at each segment's first read (its own GET of the window, for
// each chunk the read's batches cover — a batch larger than a chunk
// covers several — one wait per chunk at most): the other reads find
// their chunks in memory. Each wait is one
// observation of strata_tiering_store_wait_seconds (Stats.StoreWaits),
// what an operator compares with the reads to see whether readers wait on
// the object store.
func TestStoreWaitsCounted(t *testing.T) {
	const chunk = 16 << 10
	local := buildLocalLog(t, 700, 512<<10, 0, 21)
	bucket := openBucket(t, "mem://")
	segments := local.uploadAll(t, newTier(t, tiering.Config{Bucket: bucket}))
	tier := newTier(t, tiering.Config{Bucket: bucket, ChunkBytes: chunk})
	registry := prometheus.NewRegistry()
	registry.MustRegister(tiering.NewTierCollector(tier))
	reads := 0
	for i, remote := range segments {
		for offset := remote.BaseOffset; offset <= remote.LastOffset; {
			before := tier.Stats().StoreWaits
			got, err := readBytes(tier, context.Background(), testPartition, remote, offset, chunk)
			if err != nil {
				t.Fatalf("read %d: %v", offset, err)
			}
			waits := tier.Stats().StoreWaits - before
			// The chunks the read's bytes can cover (they start anywhere in
			// the first).
			covered := int64(len(got))/chunk + 2
			switch first := offset == remote.BaseOffset; {
			case first && (waits < 1 || waits > covered):
				t.Errorf("segment %d: its first read (%d bytes) waited %d times for the store, want 1 to %d (its own GET, one wait per chunk)", i, len(got), waits, covered)
			case !first && waits != 0:
				t.Errorf("segment %d: read of offset %d waited %d times for the store, want its chunks read ahead", i, offset, waits)
			}
			reads++
			offset = lastOffsetOf(got) + 1
			tiering.WaitCacheWrites(tier) // the read-ahead started after the read has landed
		}
	}
	stats := tier.Stats()
	// Each wait is for a chunk missed (the reader's own GET) or for a GET
	// in flight it joined (a shared fetch); a miss whose GET ended just
	// before the reader looked for it waits for nothing.
	if stats.StoreWaits < int64(len(segments)) || stats.StoreWaits > stats.CacheMisses+stats.SharedFetches {
		t.Errorf("%d reads of %d segments: %d waits for the store, want at least one per segment, at most one per chunk missed or shared: stats %+v", reads, len(segments), stats.StoreWaits, stats)
	}
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	observed := uint64(0)
	for _, family := range families {
		if family.GetName() == "strata_tiering_store_wait_seconds" {
			observed = family.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	if observed != uint64(stats.StoreWaits) {
		t.Errorf("strata_tiering_store_wait_seconds counts %d waits, Stats %d", observed, stats.StoreWaits)
	}
}
