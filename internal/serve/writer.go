package serve

import "github.com/d8da9184/opstate"

// writerFor returns what the writes of a request admitted by tok go
// through: the Store as the token's name ([opstate.Store.As]), so that
// the namespaces that keep history record who made each change; without
// tokens (tok nil), the Store as its own Options.Actor. (A token's name,
// printable ASCII, is always an actor As takes.)
func (s *Server) writerFor(tok *token) *opstate.Writer {
	if tok == nil {
		return s.store.As("")
	}
	return s.store.As(tok.name)
}
