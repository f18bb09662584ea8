package opstate

import (
	"database/sql"
	"errors"
	"fmt"

	"modernc.org/sqlite"
)

// Fdatasync says whether [Open] switches modernc.org/sqlite, the copy of
// SQLite opstate uses, to sync commits with fdatasync(2) instead of
// fsync(2). The switch belongs to the whole process (sqlite.Fdatasync):
// once on, every connection of modernc.org/sqlite in the process syncs
// with fdatasync, the application's own included, until someone turns it
// off. opstate only ever turns it on, and never off, at Close or
// otherwise: of two Stores that disagree, the one that turns it on wins,
// for both. [Open] and [OpenDB] switch it before they open the database,
// so that a failed Open may have switched it too.
//
// A commit is as durable either way. fdatasync skips only the metadata a
// later read does not need, such as the modification time; it still
// writes the file's size when a commit grew the file, as appending frames
// to the write-ahead log does. SQLite's own builds for Linux sync this
// way; modernc.org/sqlite keeps fsync, SQLite's source default, unless
// switched. What it changes is the system call, and the cost of a commit
// with DurabilityFull: see docs/performance.md.
//
// Another SQLite library in the process is not affected:
// github.com/mattn/go-sqlite3 and github.com/ncruces/go-sqlite3 sync by
// their own code, which never reads this switch.
type Fdatasync int

const (
	// FdatasyncAuto, the default, switches fdatasync on at an Open with
	// DurabilityFull, where modernc.org/sqlite offers it (Linux, FreeBSD,
	// illumos, NetBSD); elsewhere, and at an Open with DurabilityNormal,
	// whose commits do not sync, it leaves the switch as it is.
	FdatasyncAuto Fdatasync = iota
	// FdatasyncOn switches fdatasync on at Open whatever the Durability
	// (with DurabilityNormal, the checkpoints' syncs use it), and has Open
	// fail with [ErrInvalidOption] where modernc.org/sqlite cannot sync
	// with fdatasync (macOS, Windows).
	FdatasyncOn
	// FdatasyncLeave never touches the switch: the process keeps whatever
	// the application, or the Open of another Store, chose. An application
	// that wants fsync throughout gives it to every Store it opens.
	FdatasyncLeave
)

func (f Fdatasync) String() string {
	switch f {
	case FdatasyncAuto:
		return "auto"
	case FdatasyncOn:
		return "on"
	case FdatasyncLeave:
		return "leave"
	}
	return fmt.Sprintf("Fdatasync(%d)", int(f))
}

// setFdatasync is modernc.org/sqlite's switch; tests replace it to play a
// system where fdatasync is unavailable.
var setFdatasync = sqlite.Fdatasync

// switchFdatasync turns modernc.org/sqlite's fdatasync on if opts (with
// their defaults) ask for it. modernc says whether the Store's commits go
// through modernc.org/sqlite at all: false over an application's pool of
// another driver, where only FdatasyncOn has something to say, a refusal.
func switchFdatasync(opts Options, modernc bool) error {
	switch {
	case opts.Fdatasync == FdatasyncLeave:
		return nil
	case !modernc:
		if opts.Fdatasync == FdatasyncOn {
			return fmt.Errorf("%w: FdatasyncOn over a pool whose driver is not modernc.org/sqlite, which the switch does not reach", ErrInvalidOption)
		}
		return nil
	case opts.Fdatasync == FdatasyncAuto && opts.Durability != DurabilityFull:
		return nil
	}
	_, err := setFdatasync(true)
	if err == nil {
		return nil
	}
	if opts.Fdatasync == FdatasyncAuto && errors.Is(err, sqlite.ErrFdatasyncUnavailable) {
		return nil // fsync, or what SQLite uses here, stays
	}
	return fmt.Errorf("%w: FdatasyncOn: %w", ErrInvalidOption, err)
}

// moderncPool reports whether pool's driver is modernc.org/sqlite's, under
// whatever name it was registered.
func moderncPool(pool *sql.DB) bool {
	_, ok := pool.Driver().(*sqlite.Driver)
	return ok
}
