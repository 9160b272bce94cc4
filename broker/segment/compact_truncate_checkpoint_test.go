package segment

import (
	"math/rand/v2"
	"testing"

	"github.com/strata-log/strata/broker/recordbatch"
)

// TestTruncateLowersTheCleanerOffset: a truncation below the
// cleaner-offset-checkpoint replaces cleaned offsets with new, uncleaned
// records; Kafka lowers the checkpoint to the truncation point
// (LogCleanerManager.maybeTruncateCheckpoint) so they count as dirty. Left
// above, the segments rewritten below it count as clean and the pass is
// skipped for a low dirty ratio while nearly everything is dirty.
func TestTruncateLowersTheCleanerOffset(t *testing.T) {
	clock := newTestClock()
	logger, _ := newTestLogger(t)
	dir := t.TempDir()
	l := openTestLog(t, dir, 0, Config{SegmentBytes: 3000, IndexIntervalBytes: 200, Now: clock.Now, Logger: logger})
	m := &compactModel{}
	rng := rand.New(rand.NewPCG(3, 4))
	fillLog(t, l, clock, m, rng, 200, 20, []recordbatch.Codec{recordbatch.None})
	stats, err := l.Compact(CompactOptions{MinCleanableDirtyRatio: 0.5})
	if err != nil || stats.Skipped {
		t.Fatalf("first pass: %+v %v", stats, err)
	}
	cleaned := stats.CleanableEnd
	// A new leader's log diverges from the first segment's end on.
	cut := l.Segments()[1].BaseOffset
	if err := l.Truncate(cut); err != nil {
		t.Fatal(err)
	}
	m.records = nil // the model is not used past this point
	for l.EndOffset() < cleaned-1 && len(l.Segments()) < 4 {
		fillLog(t, l, clock, m, rng, 5, 20, []recordbatch.Codec{recordbatch.None})
	}
	segments := l.Segments()
	if len(segments) < 3 || segments[len(segments)-1].BaseOffset > cleaned {
		t.Fatalf("want new sealed segments below the old cleaner offset %d: %+v", cleaned, segments)
	}
	var total, dirty int64
	for i, s := range segments[:len(segments)-1] {
		total += s.Size
		if segments[i+1].BaseOffset > cut {
			dirty += s.Size
		}
	}
	stats, err = l.Compact(CompactOptions{MinCleanableDirtyRatio: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if want := float64(dirty) / float64(total); stats.DirtyRatio != want || stats.Skipped != (want < 0.5) {
		t.Fatalf("after truncating to %d below the cleaner offset %d: dirty ratio %v (skipped %v), want %v: the segments written since count as clean",
			cut, cleaned, stats.DirtyRatio, stats.Skipped, want)
	}
}
