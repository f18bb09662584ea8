package opstate

import (
	"errors"
	"fmt"
)

// A Store that has seen SQLite report its file damaged (SQLITE_CORRUPT,
// from any read or write) refuses every write from then on with
// ErrCorrupt: writing to a damaged B-tree can spread the damage to pages
// that were sound, and the operator's way out (a copy with the sqlite3
// shell's .recover, a restore) wants the file as it was found. Reads go on
// as before.

// noteDamage records err as the first sign of damage if it is one, and
// returns it.
func (s *Store) noteDamage(err error) error {
	if errors.Is(err, ErrCorrupt) {
		s.damage.CompareAndSwap(nil, &err)
	}
	return err
}

// refuseDamaged returns the error with which a write is refused once damage
// has been seen, or nil.
func (s *Store) refuseDamaged() error {
	if first := s.damage.Load(); first != nil {
		return fmt.Errorf("%w: writes refused since SQLite found damage (%v)", ErrCorrupt, *first)
	}
	return nil
}
