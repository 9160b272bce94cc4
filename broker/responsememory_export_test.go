package broker

// ResponseMemory is the server's response memory (queued.max.response.bytes):
// the bytes reserved, the reservations holding them and the Fetches
// waiting for room.
func (s *Server) ResponseMemory() (held int64, holders, waiting int) {
	return s.responseMemory.held()
}

// IdleBufferBytes is the capacity of the idle buffers the server keeps for
// request frames and Fetch reads (framePool).
func (s *Server) IdleBufferBytes() int64 { return s.frames.idleBytes() }

// ScribbleReleasedBuffers makes the server overwrite every buffer given
// back to its pool (as the stratascribble build does), so bytes a response
// still refers to after its buffer went back read wrong.
func (s *Server) ScribbleReleasedBuffers() { s.frames.scribble.Store(true) }
