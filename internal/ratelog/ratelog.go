// Package ratelog bounds the log lines that a remote peer can cause: a
// refused connection, a malformed frame, a refused handshake. Without a
// bound, anyone who can reach a port can fill the operator's disk and bury
// the lines that matter, one connection attempt at a time.
//
// A Limiter lets through at most Burst records with the same level and
// message in each Interval. The first record of a message opens its window;
// records past the burst are counted, not written, and when the window ends
// one summary record says how many were suppressed:
//
//	level=WARN msg="suppressed similar log lines" message="closing client connection" suppressed=4182 interval=1m0s
//
// Records are grouped by message, not by their attributes (a remote
// address, an error text): a peer that varies its address or its bytes
// still shares one budget. The number of messages being tracked at once is
// bounded too (maxTracked); past it, records of new messages share one
// overflow budget.
//
// The package imports nothing of Strata's: broker and metadata both use it.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Config configures a Limiter. Zero values mean the defaults.
type Config struct {
	// Burst is how many records of one message pass in each Interval;
	// default 10.
	Burst int
	// Interval is the window length; default one minute.
	Interval time.Duration
}

// maxTracked bounds the messages tracked at once; further ones share
// overflowKey's budget.
const maxTracked = 1024

// overflowKey is the budget of messages past maxTracked.
var overflowKey = windowKey{message: "(other messages)"}

type windowKey struct {
	level   slog.Level
	message string
}

// window is one message's current interval.
type window struct {
	passed     int
	suppressed int
	// handler receives the summary: the handler given to Wrap for the
	// logger of the first suppressed record, without the attributes added
	// since (a remote address would describe one record, not all of them).
	handler slog.Handler
	stop    func() bool // stops the window's timer
}

// Limiter is shared by every handler it wraps (and their WithAttrs and
// WithGroup children), so one budget covers every logger derived from it.
// It is safe for concurrent use. Close reports the pending summaries and
// stops the timers; records logged after Close pass unlimited.
type Limiter struct {
	burst    int
	interval time.Duration
	// afterFunc starts a window's timer (time.AfterFunc; tests replace it).
	afterFunc func(time.Duration, func()) func() bool

	mu      sync.Mutex // guards windows and closed
	windows map[windowKey]*window
	closed  bool
}

// New returns a Limiter.
func New(cfg Config) *Limiter {
	if cfg.Burst <= 0 {
		cfg.Burst = 10
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	return &Limiter{
		burst:    cfg.Burst,
		interval: cfg.Interval,
		windows:  make(map[windowKey]*window),
		afterFunc: func(d time.Duration, f func()) func() bool {
			return time.AfterFunc(d, f).Stop
		},
	}
}

// Logger returns a logger that writes through logger's handler, limited by l.
func (l *Limiter) Logger(logger *slog.Logger) *slog.Logger {
	return slog.New(l.Wrap(logger.Handler()))
}

// Wrap returns a handler that passes records to inner, limited by l.
func (l *Limiter) Wrap(inner slog.Handler) slog.Handler {
	return &handler{limiter: l, inner: inner, root: inner}
}

// Close writes the summary of every open window and stops their timers.
func (l *Limiter) Close() {
	l.mu.Lock()
	l.closed = true
	windows := l.windows
	l.windows = make(map[windowKey]*window)
	l.mu.Unlock()
	for key, w := range windows {
		w.stop()
		l.summarize(key, w)
	}
}

// allow accounts for one record and reports whether it may be written.
func (l *Limiter) allow(key windowKey, h slog.Handler) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return true
	}
	w, ok := l.windows[key]
	if !ok {
		if len(l.windows) >= maxTracked {
			key = overflowKey
			w, ok = l.windows[key]
		}
		if !ok {
			w = &window{}
			l.windows[key] = w
			w.stop = l.afterFunc(l.interval, func() { l.end(key, w) })
		}
	}
	if w.passed < l.burst {
		w.passed++
		return true
	}
	if w.suppressed == 0 {
		w.handler = h
	}
	w.suppressed++
	return false
}

// end closes a window when its interval is over.
func (l *Limiter) end(key windowKey, w *window) {
	l.mu.Lock()
	if l.windows[key] != w {
		l.mu.Unlock()
		return // already reported by Close
	}
	delete(l.windows, key)
	l.mu.Unlock()
	l.summarize(key, w)
}

func (l *Limiter) summarize(key windowKey, w *window) {
	if w.suppressed == 0 {
		return
	}
	record := slog.NewRecord(time.Now(), key.level, "suppressed similar log lines", 0)
	record.AddAttrs(
		slog.String("message", key.message),
		slog.Int("suppressed", w.suppressed),
		slog.Duration("interval", l.interval),
	)
	if w.handler.Enabled(context.Background(), key.level) {
		_ = w.handler.Handle(context.Background(), record)
	}
}

// handler is a slog.Handler limited by its Limiter.
type handler struct {
	limiter *Limiter
	inner   slog.Handler
	root    slog.Handler // the handler given to Wrap: summaries go there
}

func (h *handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

func (h *handler) Handle(ctx context.Context, record slog.Record) error {
	if !h.limiter.allow(windowKey{level: record.Level, message: record.Message}, h.root) {
		return nil
	}
	return h.inner.Handle(ctx, record)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &handler{limiter: h.limiter, inner: h.inner.WithAttrs(attrs), root: h.root}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{limiter: h.limiter, inner: h.inner.WithGroup(name), root: h.root}
}
