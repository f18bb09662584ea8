package cli

import (
	"fmt"
	"os"
	"path/filepath"
)

// dbSuffixes name the files of an SQLite database: the database file, at
// the path itself, and those SQLite keeps beside it, at the path and
// each suffix.
var dbSuffixes = []string{"", "-wal", "-shm", "-journal"}

// checkNotDatabase returns an error if path, a file the command is to
// open and close (serve's -tokens file), is one of the files of the
// database db: the database file, its -wal, -shm or -journal, named by
// the same path (cleaned, made absolute) or linked to it, hard or
// symbolic (the same device and inode). Closing a descriptor of the
// database file drops every POSIX lock the process holds on it, SQLite's
// included, so only SQLite may open it: path and the database's files
// are stat'ed, never opened. A PostgreSQL URL has no files to compare.
//
// A file renamed over path between this check and the open is not seen.
func checkNotDatabase(path, db string) error {
	if IsPostgresURL(db) {
		return nil
	}
	fi, statErr := os.Stat(path)
	for _, suffix := range dbSuffixes {
		f := db + suffix
		same := samePath(path, f)
		if !same && statErr == nil {
			dfi, err := os.Stat(f)
			same = err == nil && os.SameFile(fi, dfi)
		}
		if same {
			return fmt.Errorf("%s is the database's file %s, or a link to it: "+
				"give a token file of its own (only SQLite may open the database's files)", path, f)
		}
	}
	return nil
}

// samePath reports whether paths a and b are the same once cleaned and
// made absolute.
func samePath(a, b string) bool {
	abs := func(p string) string {
		if ap, err := filepath.Abs(p); err == nil {
			return ap
		}
		return filepath.Clean(p)
	}
	return abs(a) == abs(b)
}
