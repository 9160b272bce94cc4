package tiering

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// closedBody is a GET body that records its Close.
type closedBody struct {
	*strings.Reader
	closed bool
}

func (b *closedBody) Close() error { b.closed = true; return nil }

// The hand-over of a stream between two runs, in order and without
// timing: a run that takes the stream another run still reads waits for
// it and gets it; one that declines it (its reader caught up: it makes a
// ranged GET of its own) returns at once, and the stream, when its run
// ends, is closed rather than parked for a run that will never come.
func TestDeclinedStreamClosedNotParked(t *testing.T) {
	ctx := context.Background()
	s := newStreams(4)
	defer s.close()
	first, next := chunkKey{index: 0}, chunkKey{index: 8}
	newStream := func() (*openStream, *closedBody) {
		body := &closedBody{Reader: strings.NewReader("rest of the segment")}
		return &openStream{key: next, body: body, cancel: func() {}}, body
	}

	// Taken: the run reading the stream parks it, the next run gets it.
	done := s.expect(first, next, true)
	stream, body := newStream()
	taken := make(chan *openStream)
	go func() {
		got, released := s.take(ctx, next, true)
		if released {
			t.Error("a waiting run released without a release")
		}
		taken <- got
	}()
	s.park(stream)
	done()
	if got := <-taken; got != stream || body.closed {
		t.Fatalf("waiting run got %v (closed %v), want the parked stream, open", got, body.closed)
	}

	// Declined: the next run does not wait, and the stream is closed
	// where it would have been parked.
	done = s.expect(first, next, true)
	if got, released := s.take(ctx, next, false); got != nil || released {
		t.Fatalf("declining run got %v (released %v), want nothing", got, released)
	}
	stream, body = newStream()
	s.park(stream)
	done()
	if !body.closed || s.count() != 0 {
		t.Fatalf("declined stream closed %v, %d parked; want closed, none parked", body.closed, s.count())
	}

	// The mark goes with its run: the run after it parks as before.
	done = s.expect(first, next, true)
	stream, body = newStream()
	s.park(stream)
	done()
	if s.count() != 1 || body.closed {
		t.Fatalf("after a declined stream, the next one: %d parked, closed %v; want it parked", s.count(), body.closed)
	}
}

// A run waiting in take for the stream another run still reads is woken
// by a release of its segment (its reader caught up with the stream): it
// returns at once, released, and the stream is closed where it would have
// been parked. A release of another segment leaves it waiting.
func TestReleasedRunDeclinesItsStream(t *testing.T) {
	ctx := context.Background()
	s := newStreams(4)
	defer s.close()
	segment, other := uuid.New(), uuid.New()
	first, next := chunkKey{segment: segment, index: 0}, chunkKey{segment: segment, index: 8}
	done := s.expect(first, next, true)
	type took struct {
		stream   *openStream
		released bool
	}
	taken := make(chan took)
	go func() {
		stream, released := s.take(ctx, next, true)
		taken <- took{stream, released}
	}()
	// Wait until the run waits.
	for {
		s.mu.Lock()
		_, waiting := s.waiting[next]
		s.mu.Unlock()
		if waiting {
			break
		}
		runtime.Gosched()
	}
	s.release(other)
	select {
	case got := <-taken:
		t.Fatalf("a release of another segment woke the run: %+v", got)
	default:
	}
	s.release(segment)
	if got := <-taken; got.stream != nil || !got.released {
		t.Fatalf("released run got %v (released %v), want nothing, released", got.stream, got.released)
	}
	body := &closedBody{Reader: strings.NewReader("rest of the segment")}
	s.park(&openStream{key: next, body: body, cancel: func() {}})
	done()
	if !body.closed || s.count() != 0 {
		t.Fatalf("released run's stream closed %v, %d parked; want closed, none parked", body.closed, s.count())
	}
	if len(s.waiting) != 0 || len(s.declined) != 0 {
		t.Fatalf("%d waiting, %d declined left after the run ended", len(s.waiting), len(s.declined))
	}
}
