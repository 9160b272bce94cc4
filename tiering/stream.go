package tiering

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/google/uuid"
)

// streamIdle is how long a parked stream (openStream) waits for the run
// that continues it before it is closed.
const streamIdle = 10 * time.Second

// openStream is the body of a GET of a segment's .log from a chunk
// boundary to its end, parked between the runs of a sequential reader's
// read-ahead (runGET): the next run of the segment that starts exactly at
// chunk key.index takes it (exclusively) and reads its chunks from it
// instead of making a GET. Its bytes are read only when a run asks for
// them, so a stream closed early leaves the rest unread (the bytes read
// stay the bytes needed; TCP flow control holds the server back
// meanwhile).
type openStream struct {
	key    chunkKey // the segment, and the chunk the body goes on with
	end    int64    // the byte of the segment where the GET ends
	body   io.ReadCloser
	cancel context.CancelFunc // ends the GET (its context is from Tier.background)
	parked time.Time
}

// close ends the stream's GET and closes its body.
func (s *openStream) close() {
	s.cancel()
	s.body.Close()
}

// streams holds a Tier's parked streams: at most max (ReaderThreads), the
// least recently parked closed first, each closed once idle for
// streamIdle (checked on each park and take, and by a timer while any is
// parked, armed for when the oldest is due), all by Tier.Close.
type streams struct {
	mu   sync.Mutex // guards the fields below; taken under no other lock, and no other lock under it
	open map[chunkKey]*openStream
	// pending marks where the runs reading a stream now will park it: the
	// run after one (started while it still reads) waits for it, unless
	// its reader has caught up with the stream (declined).
	pending map[chunkKey]chan struct{}
	// declined marks pending streams whose continuation started without
	// them (a ranged GET of its own, in parallel): they are closed where
	// they would be parked, as no run will start there.
	declined map[chunkKey]struct{}
	// waiting holds, by the key they wait at, what wakes the runs waiting
	// in take for a pending stream when their reader caught up (release).
	waiting map[chunkKey]chan struct{}
	timer   *time.Timer // armed while open is not empty
	max     int
	closed  bool
	now     func() time.Time // the clock; tests move it on
}

func newStreams(max int) *streams {
	return &streams{open: make(map[chunkKey]*openStream), pending: make(map[chunkKey]chan struct{}), declined: make(map[chunkKey]struct{}),
		waiting: make(map[chunkKey]chan struct{}), max: max, now: time.Now}
}

// expect is called as a run of chunks first..next-1 starts (before a run
// after it can), and returns what the run calls once it has parked or
// closed its GET: when the run will read a stream (with stream, a new
// GET to the segment's end or one parked or expected at first; without,
// one parked at first), a run that starts at next meanwhile waits for it
// in take.
func (s *streams) expect(first, next chunkKey, stream bool) (done func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, open := s.open[first]
	_, taken := s.pending[next]
	if s.closed || taken || !(stream || open) {
		return func() {}
	}
	ch := make(chan struct{})
	s.pending[next] = ch
	return func() {
		s.mu.Lock()
		if s.pending[next] == ch {
			delete(s.pending, next)
			delete(s.declined, next)
		}
		s.mu.Unlock()
		close(ch)
	}
}

// take removes and returns the stream parked at key, if any. With wait,
// it first waits (until ctx ends) for the run that is to park one there;
// without, that run's stream is declined (closed where it would be
// parked) and take returns at once. released reports that the wait was
// cut short by release: the stream is declined, and the caller reads its
// run with a ranged GET of its own.
func (s *streams) take(ctx context.Context, key chunkKey, wait bool) (_ *openStream, released bool) {
	s.mu.Lock()
	ch, pending := s.pending[key]
	if pending && !wait {
		s.declined[key] = struct{}{}
		pending = false
	}
	var wake chan struct{}
	if pending {
		if wake = s.waiting[key]; wake == nil {
			wake = make(chan struct{})
			s.waiting[key] = wake
		}
	}
	s.mu.Unlock()
	if pending {
		handedOn := false
		select {
		case <-ch:
			handedOn = true
		case <-wake:
			return nil, true
		case <-ctx.Done():
		}
		s.mu.Lock()
		if s.waiting[key] == wake {
			delete(s.waiting, key)
		}
		s.mu.Unlock()
		if !handedOn {
			return nil, false
		}
	}
	s.mu.Lock()
	stream := s.open[key]
	delete(s.open, key)
	idle := s.expiredLocked()
	s.mu.Unlock()
	closeAll(idle)
	return stream, false
}

// release wakes the runs of segment waiting in take for a pending stream
// (a reader of it caught up with its read-ahead): each declines the stream
// it waited for and makes a ranged GET of its own, in parallel with the
// run still reading the stream, instead of reading after it over the same
// connection.
func (s *streams) release(segment uuid.UUID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, wake := range s.waiting {
		if _, pending := s.pending[key]; pending && key.segment == segment {
			s.declined[key] = struct{}{}
			close(wake)
			delete(s.waiting, key)
		}
	}
}

// park keeps stream for the run that continues it; closed at once when
// the tier is closed.
func (s *streams) park(stream *openStream) {
	s.mu.Lock()
	_, declined := s.declined[stream.key]
	if s.closed || s.max <= 0 || declined {
		s.mu.Unlock()
		stream.close()
		return
	}
	stream.parked = s.now()
	var evicted []*openStream
	if old, ok := s.open[stream.key]; ok {
		// Two readers of one segment whose streams reached the same
		// chunk: the newer one is kept.
		delete(s.open, stream.key)
		evicted = append(evicted, old)
	}
	for len(s.open) >= s.max {
		var oldest *openStream
		for _, o := range s.open {
			if oldest == nil || o.parked.Before(oldest.parked) {
				oldest = o
			}
		}
		delete(s.open, oldest.key)
		evicted = append(evicted, oldest)
	}
	s.open[stream.key] = stream
	evicted = append(evicted, s.expiredLocked()...)
	if s.timer == nil {
		s.armLocked()
	}
	s.mu.Unlock()
	closeAll(evicted)
}

// tick is the idle timer: it closes the streams idle too long and arms
// the timer again while any is parked (tests call it after moving the
// clock on).
func (s *streams) tick() {
	s.mu.Lock()
	idle := s.expiredLocked()
	s.armLocked()
	s.mu.Unlock()
	closeAll(idle)
}

// armLocked (re)arms the idle timer for when the oldest stream parked
// will have been idle streamIdle (a second from now at least), or stops
// it when none is parked or the streams are closed.
func (s *streams) armLocked() {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if len(s.open) == 0 || s.closed {
		return
	}
	oldest := s.now()
	for _, o := range s.open {
		if o.parked.Before(oldest) {
			oldest = o.parked
		}
	}
	s.timer = time.AfterFunc(max(time.Second, oldest.Add(streamIdle).Sub(s.now())), s.tick)
}

// expiredLocked removes and returns the streams parked for streamIdle or
// longer.
func (s *streams) expiredLocked() []*openStream {
	now := s.now()
	var idle []*openStream
	for key, o := range s.open {
		if now.Sub(o.parked) >= streamIdle {
			delete(s.open, key)
			idle = append(idle, o)
		}
	}
	return idle
}

// close closes every parked stream; streams parked later are closed at
// once.
func (s *streams) close() {
	s.mu.Lock()
	s.closed = true
	var all []*openStream
	for key, o := range s.open {
		delete(s.open, key)
		all = append(all, o)
	}
	s.armLocked() // stops it
	s.mu.Unlock()
	closeAll(all)
}

// count is the streams parked now.
func (s *streams) count() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.open))
}

func closeAll(streams []*openStream) {
	for _, s := range streams {
		s.close()
	}
}
