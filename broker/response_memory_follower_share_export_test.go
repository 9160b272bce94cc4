package broker

import (
	"context"
	"time"
)

// HoldConsumerResponseMemory takes n bytes of the consumers' share of the
// response memory, as the unwritten responses of consumers that do not
// read would (nil when not all of n is free); release gives them back.
func (s *Server) HoldConsumerResponseMemory(n int64) (release func()) {
	v := s.responseMemory.reserve(context.Background(), false, n, n, time.Now())
	if v.Size() != n {
		v.release()
		return nil
	}
	return v.release
}
