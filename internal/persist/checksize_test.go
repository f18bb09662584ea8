package persist_test

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/d8da9184/opstate/internal/persist"
)

// TestSizeCheckBesideJournal attacks "a file longer than its header says
// is refused at Open, byte for byte untouched" on a file beside which a
// -journal remains: what journal_mode=PERSIST (the sqlite3 shell's, an
// operator's, an earlier program's) leaves after every commit, a journal
// of nonzero size whose header is zeroed, which SQLite knows is no hot
// journal. SQLite takes the header's page count at its word and would
// overwrite the pages beyond it as free; Open must refuse the file with
// ErrCorrupt and leave both files as they were.
func TestSizeCheckBesideJournal(t *testing.T) {
	path := tempPath(t)
	db, err := persist.Open(path, persist.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var rows []row
	for i := range 2000 {
		rows = append(rows, row{"ns", fmt.Sprintf("key%05d", i), fmt.Sprintf("value-%05d-%090d", i, 0), 0})
	}
	write(t, db, rows...)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Back to a rollback journal, persistent, and one commit in it.
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	raw.SetMaxOpenConns(1)
	_, err = raw.Exec(`PRAGMA journal_mode = PERSIST; UPDATE operational_state SET value = 'x' WHERE key = 'key00000'`)
	raw.Close() // before the file's bytes are read: see persist/file.go
	if err != nil {
		t.Fatal(err)
	}
	journal, err := os.ReadFile(path + "-journal")
	if err != nil || len(journal) == 0 {
		t.Fatalf("journal_mode=PERSIST left %d bytes of -journal, %v; want some", len(journal), err)
	}
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pages := binary.BigEndian.Uint32(content[28:])
	binary.BigEndian.PutUint32(content[28:], pages/2)
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}

	db, err = persist.Open(path, persist.Options{})
	if err == nil {
		// What a Store would do next: write.
		_, werr := db.Apply(t.Context(), t0, []persist.Write{putW("other", "k", "v", 0)})
		db.Close()
		t.Errorf("Open(file of %d pages whose header says %d, beside a PERSIST -journal) succeeded (then a write: %v); want ErrCorrupt", pages, pages/2, werr)
	} else if !errors.Is(err, persist.ErrCorrupt) {
		t.Errorf("Open = %v; want ErrCorrupt", err)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, content) {
		t.Errorf("database file after Open: %d bytes (%v), changed: %v; want the %d bytes it had", len(got), err, !bytes.Equal(got, content), len(content))
	}
}
