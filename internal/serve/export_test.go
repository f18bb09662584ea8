package serve

// OpenStreams returns how many event streams s has open.
func (s *Server) OpenStreams() int64 { return s.streams.Load() }
