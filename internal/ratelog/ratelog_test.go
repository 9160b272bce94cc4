package ratelog

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTimers replaces time.AfterFunc: the test ends windows by hand.
type fakeTimers struct {
	mu      sync.Mutex
	pending []func()
}

func (f *fakeTimers) afterFunc(_ time.Duration, fn func()) func() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := len(f.pending)
	f.pending = append(f.pending, fn)
	return func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		stopped := f.pending[i] != nil
		f.pending[i] = nil
		return stopped
	}
}

// fire ends every window opened so far.
func (f *fakeTimers) fire() {
	f.mu.Lock()
	pending := f.pending
	f.pending = nil
	f.mu.Unlock()
	for _, fn := range pending {
		if fn != nil {
			fn()
		}
	}
}

func newTestLimiter(burst int) (*Limiter, *fakeTimers, *bytes.Buffer, *slog.Logger) {
	timers := &fakeTimers{}
	l := New(Config{Burst: burst, Interval: time.Minute})
	l.afterFunc = timers.afterFunc
	var out bytes.Buffer
	base := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return l, timers, &out, l.Logger(base)
}

func lines(out *bytes.Buffer) []string {
	s := strings.TrimSpace(out.String())
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func count(ls []string, substr string) int {
	n := 0
	for _, l := range ls {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

func TestLimiter(t *testing.T) {
	t.Run("burst then summary", func(t *testing.T) {
		_, timers, out, log := newTestLimiter(3)
		for i := range 100 {
			// Attributes differ per record, as remote addresses do: they
			// share one budget.
			log.With("remote", fmt.Sprintf("10.0.0.%d:1234", i)).Warn("connection refused", "attempt", i)
		}
		got := lines(out)
		if len(got) != 3 || count(got, "connection refused") != 3 {
			t.Fatalf("before the window ends, want the 3 first lines, got:\n%s", out)
		}
		timers.fire()
		got = lines(out)
		if len(got) != 4 {
			t.Fatalf("want 3 lines and a summary, got:\n%s", out)
		}
		summary := got[3]
		for _, want := range []string{"level=WARN", `msg="suppressed similar log lines"`, `message="connection refused"`, "suppressed=97", "interval=1m0s"} {
			if !strings.Contains(summary, want) {
				t.Errorf("summary %q lacks %s", summary, want)
			}
		}
		if strings.Contains(summary, "remote=") {
			t.Errorf("summary %q carries one record's attributes", summary)
		}
		// A new window lets lines through again.
		log.Warn("connection refused")
		if got := lines(out); len(got) != 5 {
			t.Fatalf("after the window, want the line through, got:\n%s", out)
		}
	})
	t.Run("messages and levels have their own budgets", func(t *testing.T) {
		_, timers, out, log := newTestLimiter(2)
		for range 5 {
			log.Warn("a")
			log.Warn("b")
			log.Info("a")
		}
		got := lines(out)
		if count(got, "level=WARN msg=a") != 2 || count(got, "level=WARN msg=b") != 2 || count(got, "level=INFO msg=a") != 2 {
			t.Fatalf("want 2 of each, got:\n%s", out)
		}
		timers.fire()
		if got := lines(out); count(got, "suppressed=3") != 3 {
			t.Fatalf("want three summaries of 3, got:\n%s", out)
		}
	})
	t.Run("no summary when nothing was suppressed", func(t *testing.T) {
		_, timers, out, log := newTestLimiter(5)
		log.Warn("x")
		timers.fire()
		if got := lines(out); len(got) != 1 {
			t.Fatalf("got:\n%s", out)
		}
	})
	t.Run("close reports pending summaries", func(t *testing.T) {
		l, timers, out, log := newTestLimiter(1)
		log.Warn("x")
		log.Warn("x")
		l.Close()
		if got := lines(out); len(got) != 2 || !strings.Contains(got[1], "suppressed=1") {
			t.Fatalf("got:\n%s", out)
		}
		timers.fire() // the stopped timer must not report again
		log.Warn("after close")
		if got := lines(out); len(got) != 3 {
			t.Fatalf("got:\n%s", out)
		}
	})
	t.Run("tracked messages are bounded", func(t *testing.T) {
		l, _, out, log := newTestLimiter(1)
		for i := range maxTracked + 50 {
			log.Warn(fmt.Sprintf("message %d", i))
		}
		l.mu.Lock()
		tracked := len(l.windows)
		l.mu.Unlock()
		if tracked > maxTracked+1 {
			t.Fatalf("%d windows tracked", tracked)
		}
		// The messages past the bound share one budget of 1.
		if got := lines(out); len(got) != maxTracked+1 {
			t.Fatalf("%d lines written, want %d", len(got), maxTracked+1)
		}
	})
	t.Run("disabled levels are not counted", func(t *testing.T) {
		l := New(Config{Burst: 1})
		timers := &fakeTimers{}
		l.afterFunc = timers.afterFunc
		var out bytes.Buffer
		log := l.Logger(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo})))
		for range 10 {
			log.Debug("noise")
		}
		log.Info("noise")
		if got := lines(&out); len(got) != 1 {
			t.Fatalf("got:\n%s", &out)
		}
	})
}

// TestLimiterConcurrent runs under -race: loggers from many goroutines,
// windows ending meanwhile.
func TestLimiterConcurrent(t *testing.T) {
	l, timers, out, log := newTestLimiter(5)
	var mu sync.Mutex
	safe := slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: out}, nil))
	log = l.Logger(safe)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				log.With("g", g).Warn("storm", "i", i)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			timers.fire()
		}
	}()
	wg.Wait()
	l.Close()
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, line := range lines(out) {
		if strings.Contains(line, "msg=storm") {
			total++
			continue
		}
		var n int
		if _, err := fmt.Sscanf(line[strings.Index(line, "suppressed=")+len("suppressed="):], "%d", &n); err != nil {
			t.Fatalf("line %q", line)
		}
		total += n
	}
	if total != 8*200 {
		t.Fatalf("lines written plus suppressed = %d, want %d", total, 8*200)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}
