package opstate

// Loads returns how many reads missed the cache and went to SQLite.
func (s *Store) Loads() uint64 { return s.loads.Load() }
