package persist

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"net/url"
	"runtime"
	"strings"
)

// Two kinds of path are not file names to [Open]:
//
//   - ":memory:", exactly, which SQLite itself opens as a private
//     in-memory database, a new one for each connection. Open opens a
//     private in-memory database too, but one that all the DB's
//     connections share: a database of SQLite's memdb VFS under a name of
//     its own ("/opstate-" and 26 random characters), which no other DB
//     and no file reaches, and which SQLite frees when the last
//     connection closes. Anything else, "./:memory:" included, is a file
//     name.
//   - A path beginning with "file:", which SQLite reads as a URI when, as
//     in modernc.org/sqlite, URIs are enabled (sqlite3ParseUri compares
//     the first five bytes, case-sensitively: "FILE:x.db" is a file name
//     to SQLite, and to Open). Open refuses it with ErrInvalidPath rather
//     than create a file of that name, or hand SQLite the parameters of a
//     URI (mode, vfs, cache, immutable) that would undo what Open promises
//     about the file.
//
// Every other path is a file name, taken byte for byte: a "?" in it is part
// of the name, not the start of parameters.

// memoryPath is the path that [Open] opens as a private in-memory database.
const memoryPath = ":memory:"

// checkPath refuses what Open cannot open as a file or a private
// in-memory database.
func checkPath(path string) error {
	switch {
	case path == "":
		return fmt.Errorf("%w: empty", ErrInvalidPath)
	case strings.HasPrefix(path, "file:"):
		return openError(path, fmt.Errorf(`%w: SQLite reads a path beginning with "file:" as a URI, which opstate does not take; pass a file path, or %q for a private in-memory database`, ErrInvalidPath, memoryPath))
	}
	return nil
}

// memoryDSN returns the data source name of a new private in-memory
// database, and its name in the memdb VFS. The query carries the
// connections' pragmas.
func memoryDSN(q url.Values) (dsn, name string) {
	// A name that begins with "/" is shared by every connection of the
	// process that opens it with vfs=memdb; the random part keeps it this
	// DB's own.
	name = "/opstate-" + rand.Text()
	q.Set("vfs", "memdb")
	return "file:" + name + "?" + q.Encode(), name
}

// Private reports whether db is a private in-memory database, opened from
// ":memory:". Nothing but db's own connections reaches it: there is no
// other writer, so [DB.DataVersion] never changes and nothing needs to be
// polled for; nothing of it is on disk, and it is gone once db is closed.
// It has no write-ahead log (memdb keeps its rollback journal in memory):
// [DB.CheckpointDue] never fires, and [DB.Checkpoint] does nothing. Its
// reads and writes take turns (see beginRead) rather than run beside each
// other. [DB.Backup] writes a file on disk, as for any DB.
func (db *DB) Private() bool { return db.private }

// migratePrivate brings a new private database to the current schema. It
// runs migrate's steps without migrate's switch to WAL, which memdb does
// not have: a private database keeps journal_mode=MEMORY, under which a
// transaction rolls back as in any other mode.
func migratePrivate(ctx context.Context, c *sql.Conn) error {
	for {
		done, err := migrateStep(ctx, c)
		if err != nil || done {
			return err
		}
	}
}

// diskURI is abs as a URI that names SQLite's default VFS, the one that
// reads and writes the disk. A private database's connections open every
// other file they name with memdb, their own VFS: VACUUM INTO a plain
// path would write into memory.
func diskURI(abs string) string {
	vfs := "unix"
	if runtime.GOOS == "windows" {
		vfs = "win32"
	}
	return "file:" + (&url.URL{Path: abs}).EscapedPath() + "?vfs=" + vfs
}
