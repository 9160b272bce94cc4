package clockwatch_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-log/strata/internal/clockwatch"
	"github.com/strata-log/strata/internal/clockwatch/clockwatchtest"
)

type fixture struct {
	clock *clockwatchtest.Clock
	watch *clockwatch.Watch
	logs  *bytes.Buffer
	reg   *prometheus.Registry
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{clock: clockwatchtest.New(time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)), logs: &bytes.Buffer{}, reg: prometheus.NewRegistry()}
	w, err := clockwatch.New(clockwatch.Config{Clock: f.clock, Logger: slog.New(slog.NewTextHandler(f.logs, nil)), Registerer: f.reg})
	if err != nil {
		t.Fatal(err)
	}
	f.watch = w
	return f
}

// gauge reads strata_clock_jump_paused from the registry.
func (f *fixture) gauge(t *testing.T) float64 {
	t.Helper()
	families, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, family := range families {
		if family.GetName() == "strata_clock_jump_paused" {
			return family.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("strata_clock_jump_paused not registered")
	return 0
}

func (f *fixture) wantPaused(t *testing.T, want bool) {
	t.Helper()
	if got := f.watch.Paused(); got != want {
		t.Fatalf("Paused() = %v, want %v; logs:\n%s", got, want, f.logs)
	}
	wantGauge := 0.0
	if want {
		wantGauge = 1
	}
	if got := f.gauge(t); got != wantGauge {
		t.Fatalf("strata_clock_jump_paused = %v, want %v", got, wantGauge)
	}
}

func TestTimePassingDoesNotPause(t *testing.T) {
	f := newFixture(t)
	for range 10 {
		f.clock.Advance(3 * time.Hour) // a long gap between checks is not a jump
		f.wantPaused(t, false)
	}
	f.clock.Jump(59 * time.Minute) // under the threshold (NTP stepping a badly set clock)
	f.wantPaused(t, false)
	f.clock.Jump(-2 * time.Hour) // backward: nothing is deleted early
	f.wantPaused(t, false)
}

func TestForwardJumpPausesUntilConfirmed(t *testing.T) {
	f := newFixture(t)
	f.clock.Advance(time.Minute)
	f.clock.Jump(365 * 24 * time.Hour)
	f.wantPaused(t, true)
	f.clock.Advance(time.Minute)
	f.wantPaused(t, true) // stays paused while time passes
	if n := strings.Count(f.logs.String(), "jumped forward"); n != 1 {
		t.Fatalf("%d jump reports, want 1 per jump:\n%s", n, f.logs)
	}
	if !strings.Contains(f.logs.String(), "confirm-clock") {
		t.Fatalf("the report does not say what to do:\n%s", f.logs)
	}
	if !f.watch.Confirm() {
		t.Fatal("Confirm() = false while paused")
	}
	f.wantPaused(t, false)
	f.clock.Advance(time.Hour)
	f.wantPaused(t, false) // the confirmed clock is the new normal
	if f.watch.Confirm() {
		t.Fatal("Confirm() = true while not paused")
	}
}

func TestForwardJumpResumesWhenTheClockReturns(t *testing.T) {
	f := newFixture(t)
	f.clock.Jump(2 * time.Hour)
	f.wantPaused(t, true)
	f.clock.Advance(10 * time.Minute)
	f.clock.Jump(-90 * time.Minute) // partly back: still 30 minutes ahead, within the threshold
	f.wantPaused(t, false)
	if !strings.Contains(f.logs.String(), "returned") {
		t.Fatalf("no report of the clock returning:\n%s", f.logs)
	}
}

// TestCheckSetsTheGauge: the gauge follows a jump without anyone asking
// Paused (Run's periodic Check).
func TestCheckSetsTheGauge(t *testing.T) {
	f := newFixture(t)
	f.clock.Jump(2 * time.Hour)
	f.watch.Check()
	if n, err := testutil.GatherAndCount(f.reg, "strata_clock_jump_paused"); err != nil || n != 1 {
		t.Fatalf("strata_clock_jump_paused gathered %d times, err %v", n, err)
	}
	if got := f.gauge(t); got != 1 {
		t.Fatalf("gauge = %v after a jump", got)
	}
}
