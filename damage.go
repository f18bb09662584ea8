package opstate

import (
	"errors"
	"fmt"

	"github.com/d8da9184/opstate/storage"
)

// A Store that has seen SQLite report its file damaged (SQLITE_CORRUPT,
// from any read or write) refuses every write from then on with
// ErrCorrupt: writing to a damaged B-tree can spread the damage to pages
// that were sound, and the operator's way out (a copy with the sqlite3
// shell's .recover, a restore) wants the file as it was found. Reads go on
// as before. The committer keeps the record and checks it before every
// transaction, so that writes queued before the damage was seen, or
// sharing the transaction that found it, are refused too.

// noteDamage records err as the first sign of damage if it is one, and
// returns it.
func (s *Store) noteDamage(err error) error { return s.committer.noteDamage(err) }

// refuseDamaged returns the error with which a write is refused once damage
// has been seen, or nil.
func (s *Store) refuseDamaged() error { return s.committer.refuseDamaged() }

func (cm *committer) noteDamage(err error) error {
	if errors.Is(err, storage.ErrCorrupt) {
		first := err // a copy, so that only this branch moves it to the heap
		cm.damage.CompareAndSwap(nil, &first)
	}
	return err
}

func (cm *committer) refuseDamaged() error {
	if first := cm.damage.Load(); first != nil {
		// The first error is wrapped too: damage that another SQLite
		// library in the process caused matches ErrForeignSQLite.
		return fmt.Errorf("%w: writes refused since SQLite found damage (%w)", ErrCorrupt, *first)
	}
	return nil
}
