package persist

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The checks in this file run before SQLite writes anything to a file, and
// none of them opens an existing database file or its sidecars. The reason
// is POSIX advisory locking, on which SQLite's locking rests: closing any
// descriptor of a file releases every lock the process holds on that file,
// through whichever descriptor it took them. A header read with os.Open and
// Close while another connection of the process had the file open would
// silently drop that connection's locks; a process that then found the
// file unlocked could checkpoint and delete the write-ahead log under it,
// and acknowledged writes would be lost. So what is at a path is learnt
// with stat, which opens nothing, and what is in the file is learnt from
// SQLite itself, which keeps its descriptors open while any connection of
// the process holds a lock on the file.

// sidecarSuffixes are the files SQLite keeps beside a database file.
var sidecarSuffixes = []string{"-wal", "-shm", "-journal"}

// prepareFile checks what is at path before SQLite opens it, and creates an
// empty database file with mode 0600 when nothing is there. It refuses,
// with ErrNotDatabase and without touching anything, what is not a regular
// file (a directory, a device, a FIFO, a socket, after following symbolic
// links; a symbolic link to nothing), a file with several hard links or
// mounted on its own (each name, each mount, would get its own write-ahead
// log), the -wal, -shm or -journal file of a database, and a database
// whose -wal, -shm or -journal is a symbolic link, a mount point or not a
// regular file (see checkPlace).
func prepareFile(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		// Before creating the file, so that a refusal leaves nothing.
		if dir, derr := filepath.EvalSymlinks(filepath.Dir(path)); derr == nil {
			if err := checkPlace(filepath.Join(dir, filepath.Base(path))); err != nil {
				return openError(path, err)
			}
		}
		if err := createFile(path); err != nil && !errors.Is(err, fs.ErrExist) {
			return openError(path, err)
		}
		fi, err = os.Stat(path) // ours, or someone else's who created it first
		if lfi, lerr := os.Lstat(path); errors.Is(err, fs.ErrNotExist) && lerr == nil && lfi.Mode()&fs.ModeSymlink != 0 {
			return openError(path, fmt.Errorf("%w: a symbolic link to nothing", ErrNotDatabase))
		}
	}
	if err != nil {
		return openError(path, err)
	}
	if err := checkKind(path, fi); err != nil {
		return openError(path, err)
	}
	return nil
}

// checkKind refuses what SQLite must not open as a database: fi describes
// path, symbolic links followed.
func checkKind(path string, fi fs.FileInfo) error {
	switch {
	case fi.IsDir():
		return fmt.Errorf("%w: is a directory", ErrNotDatabase)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%w: is not a regular file (%v)", ErrNotDatabase, fi.Mode().Type())
	}
	if n := hardLinks(fi); n > 1 {
		return fmt.Errorf("%w: file has %d hard links, and SQLite keeps a write-ahead log per name", ErrNotDatabase, n)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	if suffix, base, ok := sidecarOf(real); ok {
		return fmt.Errorf("%w: is the %s file of database %s", ErrNotDatabase, suffix, base)
	}
	return checkPlace(real)
}

// checkPlace refuses a database whose write-ahead log would not be the one
// file that every connection to it uses: real is the database file's path,
// absolute and free of symbolic links, which SQLite opens (it follows
// links to the file itself) and after which it names the -wal, -shm and
// -journal files. It refuses, with ErrNotDatabase:
//   - a file mounted on its own (a bind mount of one file, as in docker -v
//     host/state.db:/data/state.db): its -wal and -shm would be kept
//     beside the mount point, not beside the file, so a connection through
//     the file's own path would use others, and the data in them would be
//     lost with the mount's directory;
//   - a -wal, -shm or -journal that is a mount point, for the same
//     reason, or a symbolic link, which SQLite refuses to open only once
//     it has begun (it may create the -wal first), with an error that
//     does not say why;
//   - a -wal, -shm or -journal that is not a regular file.
//
// A bind mount from the file system of the file's directory keeps its
// device number, so only the kernel's list of mounts tells a mount point;
// it is read on Linux, where files are mounted so. The check opens
// nothing but that list.
func checkPlace(real string) error {
	for _, suffix := range sidecarSuffixes {
		sfi, err := os.Lstat(real + suffix)
		switch {
		case err != nil:
		case sfi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%w: %s%s is a symbolic link, which SQLite does not open as a database's %s file; "+
				"put the file itself there, or remove the link", ErrNotDatabase, real, suffix, suffix)
		case !sfi.Mode().IsRegular():
			return fmt.Errorf("%w: %s%s is not a regular file (%v)", ErrNotDatabase, real, suffix, sfi.Mode().Type())
		}
	}
	switch m := mountPoint(real, real+"-wal", real+"-shm", real+"-journal"); m {
	case "":
		return nil
	case real:
		return fmt.Errorf("%w: %s is a file mounted on its own (a bind mount of one file), and SQLite keeps its "+
			"-wal and -shm beside the mount point, where the file's other paths do not see them and from where "+
			"they are lost with the mount; mount the directory that holds the database instead", ErrNotDatabase, real)
	default:
		return fmt.Errorf("%w: %s is a mount point, and SQLite must keep a database's -wal, -shm and -journal "+
			"in the database's own directory; mount the directory that holds the database instead, with nothing "+
			"mounted on its files", ErrNotDatabase, m)
	}
}

// sidecarOf reports whether path is the -wal, -shm or -journal file of a
// database, a regular file beside it, and returns which and the database.
// It only stats.
func sidecarOf(path string) (suffix, base string, ok bool) {
	for _, suffix := range sidecarSuffixes {
		base, ok := strings.CutSuffix(path, suffix)
		if !ok {
			continue
		}
		if fi, err := os.Stat(base); err == nil && fi.Mode().IsRegular() {
			return suffix, base, true
		}
	}
	return "", "", false
}

// createFile creates an empty file with mode 0600 at path, or fails with
// fs.ErrExist if something is there already. It never opens the file: a
// connection of this process that opened path the moment it appeared would
// lose its locks when the descriptor was closed. Where the system can,
// mknod(2) makes the file with no descriptor and no other name (a second
// name, even for a moment, makes a concurrent Open refuse the file for its
// two hard links, and for good if the process dies before removing it).
// Elsewhere the file is made under a temporary name of its own, which
// nothing else opens, and linked into place. A file system with neither
// is refused, with a message saying to create the file first.
func createFile(path string) error {
	switch err := mknodRegular(path, 0o600); {
	case err == nil, errors.Is(err, fs.ErrExist):
		return err
	case !errors.Is(err, errors.ErrUnsupported):
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".new-*") // mode 0600
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name)
	if err := tmp.Close(); err != nil {
		return err
	}
	switch err := os.Link(name, path); {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrExist):
		return fs.ErrExist
	default:
		return fmt.Errorf("this file system makes no empty file without opening it (no mknod of a regular file, no hard links: %w); create %s first, empty, and open it again", err, path)
	}
}

// checkSize reads the database header through SQLite, which refuses a file
// that does not begin with one (SQLITE_NOTADB) and a file shorter than its
// header says (SQLITE_CORRUPT), and refuses with ErrCorrupt a file longer
// than its header says, which SQLite would take at its header's word,
// overwriting the pages beyond it as if they were free. The comparison runs
// inside a read transaction and only when the write-ahead log holds
// nothing: then no commit or checkpoint can change the file's size until it
// ends, so a file being written by others is never taken for a damaged one.
func checkSize(ctx context.Context, c *sql.Conn, path string) (err error) {
	if _, err := c.ExecContext(ctx, "BEGIN"); err != nil {
		return err
	}
	defer func() {
		if _, rerr := c.ExecContext(context.Background(), "ROLLBACK"); err == nil {
			err = rerr
		}
	}()
	var objects, pages, pageSize int64
	if err := c.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&objects); err != nil {
		return err
	}
	if err := c.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		return err
	}
	if err := c.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
		return err
	}
	// Pages may live in the log, or the file may be longer than the log's
	// view of it until a checkpoint. A -journal does not matter: a hot one
	// was rolled back by the read above, and in rollback mode the read
	// transaction's shared lock keeps every writer from committing until
	// it ends; a journal left by journal_mode=PERSIST is not empty, and
	// must not switch the check off.
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if pages > 0 && pages*pageSize != fi.Size() {
		return fmt.Errorf("%w: header says %d pages of %d bytes, file has %d bytes", ErrCorrupt, pages, pageSize, fi.Size())
	}
	return nil
}
