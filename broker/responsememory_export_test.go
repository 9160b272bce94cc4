package broker

// ResponseMemory is the server's response memory (queued.max.response.bytes):
// the bytes reserved, the reservations holding them and the Fetches
// waiting for room.
func (s *Server) ResponseMemory() (held int64, holders, waiting int) {
	return s.responseMemory.held()
}
