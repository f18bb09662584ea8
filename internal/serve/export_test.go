package serve

import "time"

// OpenStreams returns how many event streams s has open.
func (s *Server) OpenStreams() int64 { return s.streams.Load() }

// Authenticate returns the name of the token of t whose secret is secret.
func Authenticate(t *Tokens, secret string) (name string, ok bool) {
	tok, ok := t.authenticate(secret, false)
	return tok.name, ok
}

// SetNow replaces the clock of s's sessions.
func (s *Server) SetNow(now func() time.Time) { s.now = now }

// Sessions returns how many sessions s holds.
func (s *Server) Sessions() int { return s.sessions.len() }
