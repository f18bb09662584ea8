package persist_test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"modernc.org/sqlite"

	"github.com/d8da9184/opstate/internal/persist"
)

// restoreFile copies the database at src into the file at path, open or
// not, through SQLite's backup API on a connection of its own: what the
// sqlite3 shell's .restore does.
func restoreFile(t *testing.T, path, src string) {
	t.Helper()
	c, err := rawDB(t, path).Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Raw(func(dc any) error {
		r, err := dc.(interface {
			NewRestore(string) (*sqlite.Backup, error)
		}).NewRestore(src)
		if err != nil {
			return err
		}
		if _, err := r.Step(-1); err != nil {
			r.Finish()
			return err
		}
		return r.Finish()
	})
	if err != nil {
		t.Fatalf("restore %s from %s: %v", path, src, err)
	}
}

// snapshot copies the file at path to a new file, as of now, with VACUUM
// INTO on a connection of its own, and returns the copy's path.
func snapshot(t *testing.T, path string) string {
	t.Helper()
	snap := filepath.Join(t.TempDir(), "snapshot.db")
	if _, err := rawDB(t, path).Exec(`VACUUM INTO ?`, snap); err != nil {
		t.Fatal(err)
	}
	return snap
}

// insertRows inserts n rows of namespace "other" into the file at path by
// plain SQL, on a connection of its own: n rows of the change log.
func insertRows(t *testing.T, path string, n int, prefix string) {
	t.Helper()
	db := rawDB(t, path)
	for i := range n {
		if _, err := db.Exec(`INSERT INTO operational_state (namespace, key, value, updated_at) VALUES ('other', ?, 'v', '2026-01-01T00:00:00.000Z')`,
			fmt.Sprint(prefix, i)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestChangesRewind checks that a DB reports a Reset after its file was
// taken back to an earlier state through SQLite (a backup or snapshot
// restored into it with the backup API, as the sqlite3 shell's .restore
// does), whatever the change log restored with it says: the log's
// positions are reused by the rows written after the rewind, so that it
// can read on from its position as though nothing had happened.
//
// In the last two cases the row at the DB's position survives the rewind,
// with everything before it: they are those a check of that row alone
// would miss. What the DB, or a Store above it, had read from the file or
// written to it after that position was taken back.
func TestChangesRewind(t *testing.T) {
	tests := []struct {
		name string
		// run brings the DB (and its file at path) to the rewind, after
		// which the test calls Changes once.
		run func(t *testing.T, db *persist.DB, path string)
	}{
		{"restore, restored log past the position", func(t *testing.T, db *persist.DB, path string) {
			snap := snapshot(t, path)
			for i := 1; i <= 5; i++ {
				apply(t, db, t0, putW("ns", "x", fmt.Sprint("v", i), 0))
			}
			changes(t, db) // the position passes the DB's own rows
			insertRows(t, snap, 20, "k")
			restoreFile(t, path, snap)
		}},
		{"restore, then others' writes past the position", func(t *testing.T, db *persist.DB, path string) {
			snap := snapshot(t, path)
			for i := 1; i <= 5; i++ {
				apply(t, db, t0, putW("ns", "x", fmt.Sprint("v", i), 0))
			}
			changes(t, db)
			restoreFile(t, path, snap)
			insertRows(t, path, 20, "k")
		}},
		{"own writes not yet read, restore, others' writes", func(t *testing.T, db *persist.DB, path string) {
			snap := snapshot(t, path)
			for i := 1; i <= 5; i++ {
				apply(t, db, t0, putW("ns", "x", fmt.Sprint("v", i), 0))
			}
			restoreFile(t, path, snap)
			insertRows(t, path, 20, "k")
		}},
		{"restore of a snapshot taken after the position", func(t *testing.T, db *persist.DB, path string) {
			insertRows(t, path, 1, "z") // others' write, read by a Store
			snap := snapshot(t, path)
			insertRows(t, path, 1, "w") // another, read too; taken back
			restoreFile(t, path, snap)
			insertRows(t, path, 20, "k")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := mustOpen(t, "")
			apply(t, db, t0, putW("ns", "x", "v0", 0))
			if ch := changes(t, db); ch.Foreign || ch.Reset {
				t.Fatalf("Changes() after own writes = %+v; want nothing", ch)
			}
			tt.run(t, db, db.Path())
			if ch := changes(t, db); !ch.Reset || !ch.Foreign {
				t.Errorf("Changes() after the rewind = %+v; want a Reset", ch)
			}
			// From then on the DB reads the log it found, key by key.
			insertRows(t, db.Path(), 1, "after")
			if ch := changes(t, db); ch.Reset || !slices.Equal(ch.Keys, keys("other", "after0")) {
				t.Errorf("Changes() after a write that followed = %+v; want key other/after0 and no Reset", ch)
			}
			if ch := changes(t, db); ch.Reset || ch.Foreign {
				t.Errorf("Changes() with nothing new = %+v; want nothing", ch)
			}
		})
	}
}

// TestChangesSchemaChange checks what else changes the schema cookie that
// a rewind changes, and is reported as a Reset for that reason, and what
// does not.
func TestChangesSchemaChange(t *testing.T) {
	tests := []struct {
		sql   string
		reset bool
	}{
		{`VACUUM`, true},
		{`CREATE TABLE app (x)`, true},
		{`CREATE TABLE IF NOT EXISTS operational_state_changes (x)`, false}, // there already: nothing changes
		{`CREATE TEMP TABLE scratch (x)`, false},                            // another connection's own
		{`PRAGMA wal_checkpoint(TRUNCATE)`, false},
		{`INSERT INTO operational_state VALUES ('ns', 'k', 'v', '2026-01-01T00:00:00.000Z', NULL)`, false},
	}
	for _, tt := range tests {
		t.Run(tt.sql, func(t *testing.T) {
			db := mustOpen(t, "")
			apply(t, db, t0, putW("ns", "x", "v0", 0))
			changes(t, db)
			raw, err := sql.Open("sqlite", db.Path())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			raw.SetMaxOpenConns(1)
			if _, err := raw.Exec(tt.sql); err != nil {
				t.Fatal(err)
			}
			if ch := changes(t, db); ch.Reset != tt.reset {
				t.Errorf("Changes() = %+v; want Reset %v", ch, tt.reset)
			}
		})
	}
}
