package coordinator

import (
	"errors"
	"sync"
)

// ErrClosedWhileLoading is what a shard's replay callback returns once
// the shard is closed (ClosedLocked): its Load stops there and the shard
// never serves. A shard takes its mutex batch by batch while it replays,
// never across the replay, so that Close (a leadership change, applied
// with the cluster's metadata) does not wait for a long load.
var ErrClosedWhileLoading = errors.New("coordinator: shard closed while loading")

// Leader tells whether this broker still leads a shard's partition (the
// shard's log).
type Leader interface {
	Leading() bool
}

// Lifecycle is one coordinator shard's life: it loads once (Loaded is
// closed then), serves while loaded, open and its partition led here, and
// Close stops it for good. The closed flag is guarded by the shard's own
// mutex, so a shard that checks it (ClosedLocked) under that mutex sees it
// change only between its critical sections, and Close waits for the one
// in progress (such as an append made under the lock).
type Lifecycle struct {
	mu     sync.Locker // the shard's mutex; guards closed
	leader Leader

	loaded chan struct{} // closed once the shard has loaded
	done   chan struct{} // closed by Close
	once   sync.Once     // closes done
	closed bool
}

// NewLifecycle makes the lifecycle of a shard whose mutex is mu and whose
// partition's leadership leader reports.
func NewLifecycle(mu sync.Locker, leader Leader) *Lifecycle {
	return &Lifecycle{mu: mu, leader: leader, loaded: make(chan struct{}), done: make(chan struct{})}
}

// Loaded is closed once the shard has loaded (SetLoaded).
func (l *Lifecycle) Loaded() <-chan struct{} { return l.loaded }

// SetLoaded marks the shard loaded, whether or not it serves: called once,
// when its Load returns.
func (l *Lifecycle) SetLoaded() { close(l.loaded) }

// Done is closed by Close: what waits for the shard's partition (its load
// waiting for the replayed records to be committed) gives up.
func (l *Lifecycle) Done() <-chan struct{} { return l.done }

// Serving reports whether the shard is loaded, open and its partition
// still led here. Called without the shard's mutex.
func (l *Lifecycle) Serving() bool {
	select {
	case <-l.loaded:
	default:
		return false
	}
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	return !closed && l.leader.Leading()
}

// ClosedLocked reports whether Close has been called; the shard's mutex
// is held.
func (l *Lifecycle) ClosedLocked() bool { return l.closed }

// Close marks the shard closed (under the shard's mutex, so after any
// critical section in progress) and closes Done. Called without the
// shard's mutex; further calls do nothing more.
func (l *Lifecycle) Close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.once.Do(func() { close(l.done) })
}
