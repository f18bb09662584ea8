package persist

import (
	"os"
	"sync"

	"modernc.org/sqlite"
)

// SQLite's locks on the database file are POSIX record locks by default,
// which belong to the process and inode: closing any descriptor of the
// file, anywhere in the process (os.ReadFile for a checksum, a copy, a file
// watcher), drops every one of them, and another process may then
// checkpoint and delete the write-ahead log under the DB, losing its
// acknowledged writes. Open file description (OFD) locks belong to the
// descriptor SQLite opened, and survive that. modernc.org/sqlite uses them
// for the database file, on Linux, once switched on for the whole process
// before its first lock; they conflict with the POSIX locks of other
// processes (the sqlite3 shell, other SQLite libraries) as those conflict
// with each other. The -shm's locks stay POSIX locks either way.
//
// ofdEnv is modernc.org/sqlite's own switch: when it is set, to anything,
// the choice is the user's, and Open leaves it alone.
const ofdEnv = "MODERNC_SQLITE_OFD_LOCK"

var ofdOnce sync.Once

// useOFDLocks switches modernc.org/sqlite to OFD locks, once per process,
// unless ofdEnv is set. It is too late once a connection of the process has
// locked a database file (an application's own, opened before the first
// Open), and impossible off Linux or on a file system that refuses OFD
// locks: POSIX locks then stay, as sqlite.OFDLockingEnabled reports.
func useOFDLocks() {
	ofdOnce.Do(func() {
		if _, set := os.LookupEnv(ofdEnv); set {
			return
		}
		sqlite.OFDLocking(true) // ErrOFDLockingTooLate, ErrOFDLockingUnavailable: POSIX locks stay
	})
}
