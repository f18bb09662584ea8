package opstate

import (
	"database/sql"
	"fmt"

	"modernc.org/sqlite"
)

// Fdatasync says whether [Open] switches modernc.org/sqlite, the copy of
// SQLite opstate uses, to sync commits with fdatasync(2) instead of
// fsync(2). The switch belongs to the whole process (sqlite.Fdatasync):
// once on, every connection of modernc.org/sqlite in the process syncs
// with fdatasync, the application's own included, until someone turns it
// off. opstate turns it on only when asked (FdatasyncOn), and never off,
// at Close or otherwise: of two Stores that disagree, the one that turns
// it on wins, for both. [Open] and [OpenDB] switch it before they open
// the database, so that a failed Open may have switched it too.
//
// A commit is as durable either way. fdatasync skips only the metadata a
// later read does not need, such as the modification time; it still
// writes the file's size when a commit grew the file, as appending frames
// to the write-ahead log does. SQLite's own builds for Linux sync this
// way; modernc.org/sqlite keeps fsync, SQLite's source default, unless
// switched. It is not the default here because on the machine measured
// it made no commit faster (docs/performance.md), while it changes the
// system call of every modernc.org/sqlite connection of the process.
//
// Another SQLite library in the process is not affected:
// github.com/mattn/go-sqlite3 and github.com/ncruces/go-sqlite3 sync by
// their own code, which never reads this switch.
type Fdatasync int

const (
	// FdatasyncLeave, the default, never touches the switch: the process
	// keeps whatever the application, or the Open of another Store, chose
	// (fsync unless someone switched).
	FdatasyncLeave Fdatasync = iota
	// FdatasyncOn switches fdatasync on at Open whatever the Durability
	// (with DurabilityNormal, the checkpoints' syncs use it), and has Open
	// fail with [ErrInvalidOption] where modernc.org/sqlite cannot sync
	// with fdatasync (macOS, Windows), and OpenDB over a pool of another
	// driver, which the switch does not reach.
	FdatasyncOn
)

func (f Fdatasync) String() string {
	switch f {
	case FdatasyncLeave:
		return "leave"
	case FdatasyncOn:
		return "on"
	}
	return fmt.Sprintf("Fdatasync(%d)", int(f))
}

// setFdatasync is modernc.org/sqlite's switch; tests replace it to play a
// system where fdatasync is unavailable.
var setFdatasync = sqlite.Fdatasync

// switchFdatasync turns modernc.org/sqlite's fdatasync on if opts ask for
// it. modernc says whether the Store's commits go through
// modernc.org/sqlite at all: false over an application's pool of another
// driver, where FdatasyncOn is refused.
func switchFdatasync(opts Options, modernc bool) error {
	switch {
	case opts.Fdatasync != FdatasyncOn:
		return nil
	case !modernc:
		return fmt.Errorf("%w: FdatasyncOn over a pool whose driver is not modernc.org/sqlite, which the switch does not reach", ErrInvalidOption)
	}
	if _, err := setFdatasync(true); err != nil {
		return fmt.Errorf("%w: FdatasyncOn: %w", ErrInvalidOption, err)
	}
	return nil
}

// moderncPool reports whether pool's driver is modernc.org/sqlite's, under
// whatever name it was registered.
func moderncPool(pool *sql.DB) bool {
	_, ok := pool.Driver().(*sqlite.Driver)
	return ok
}
