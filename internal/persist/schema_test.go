package persist_test

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate/internal/persist"
)

// schemaOf returns opstate's objects in the file at path, as sqlite_schema
// holds them, one line each.
func schemaOf(t *testing.T, path string) string {
	t.Helper()
	rows, err := rawDB(t, path).Query(`SELECT type, name, tbl_name, ifnull(sql, '') FROM sqlite_schema
		WHERE name LIKE 'operational_state%' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var typ, name, tbl, q string
		if err := rows.Scan(&typ, &name, &tbl, &q); err != nil {
			t.Fatal(err)
		}
		b.WriteString(typ + " " + name + " on " + tbl + ": " + strings.Join(strings.Fields(q), " ") + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// execRaw runs statements on the file at path through a connection of its
// own, failing the test on error.
func execRaw(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db := rawDB(t, path)
	db.SetMaxOpenConns(1)
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
}

// damages are edits of opstate's schema that Open and a running DB put
// back: each with a write by another connection that the edit would hide
// from the DB, and the key that write changes. Without its change log, or
// with one of other columns, no write succeeds (the triggers fail): fails.
var damages = []struct {
	name  string
	edit  []string
	write string
	key   persist.Key
	fails bool
}{
	{"insert trigger dropped", []string{`DROP TRIGGER operational_state_changes_insert`},
		`INSERT INTO operational_state VALUES ('ns', 'new', 'v', '2026-01-01T00:00:00.000Z', NULL)`, persist.Key{Namespace: "ns", Key: "new"}, false},
	{"update trigger dropped", []string{`DROP TRIGGER operational_state_changes_update`},
		`UPDATE operational_state SET value = 'other' WHERE key = 'a'`, persist.Key{Namespace: "ns", Key: "a"}, false},
	{"rename trigger dropped", []string{`DROP TRIGGER operational_state_changes_rename`},
		`UPDATE operational_state SET key = 'renamed' WHERE key = 'a'`, persist.Key{Namespace: "ns", Key: "a"}, false},
	{"delete trigger dropped", []string{`DROP TRIGGER operational_state_changes_delete`},
		`DELETE FROM operational_state WHERE key = 'a'`, persist.Key{Namespace: "ns", Key: "a"}, false},
	{"insert trigger replaced", []string{`DROP TRIGGER operational_state_changes_insert`,
		`CREATE TRIGGER operational_state_changes_insert AFTER INSERT ON operational_state BEGIN SELECT 1; END`},
		`INSERT INTO operational_state VALUES ('ns', 'new', 'v', '2026-01-01T00:00:00.000Z', NULL)`, persist.Key{Namespace: "ns", Key: "new"}, false},
	{"change log dropped", []string{`DROP TABLE operational_state_changes`},
		`DELETE FROM operational_state WHERE key = 'a'`, persist.Key{Namespace: "ns", Key: "a"}, true},
	{"change log of the first version 2", []string{`DROP TABLE operational_state_changes`,
		`CREATE TABLE operational_state_changes (seq INTEGER PRIMARY KEY, namespace TEXT NOT NULL, key TEXT NOT NULL)`},
		`DELETE FROM operational_state WHERE key = 'a'`, persist.Key{Namespace: "ns", Key: "a"}, true},
	{"expiry index dropped", []string{`DROP INDEX operational_state_expiry`},
		`DELETE FROM operational_state WHERE key = 'a'`, persist.Key{Namespace: "ns", Key: "a"}, false},
	{"expiry index replaced", []string{`DROP INDEX operational_state_expiry`, `CREATE INDEX operational_state_expiry ON operational_state (value)`},
		`DELETE FROM operational_state WHERE key = 'a'`, persist.Key{Namespace: "ns", Key: "a"}, false},
}

// TestOpenRepairsSchema checks that Open puts back what of opstate's
// schema was dropped or changed in a file at the current version, so that
// the file is as a new one, that a DB then sees another connection's
// write the edit would have hidden, and that a second Open changes nothing.
func TestOpenRepairsSchema(t *testing.T) {
	fresh := mustOpen(t, "")
	want := schemaOf(t, fresh.Path())
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			path := tempPath(t)
			db, err := persist.Open(path, persist.Options{})
			if err != nil {
				t.Fatal(err)
			}
			apply(t, db, t0, putW("ns", "a", "1", 0))
			db.Close()
			execRaw(t, path, d.edit...)
			if got := schemaOf(t, path); got == want {
				t.Fatalf("the edit left the schema as it was")
			}

			db, err = persist.Open(path, persist.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := schemaOf(t, path); got != want {
				t.Errorf("schema after Open:\n%s\nwant:\n%s", got, want)
			}
			execRaw(t, path, d.write)
			if ch := changes(t, db); !ch.Foreign || !ch.Reset && !slices.Contains(ch.Keys, d.key) {
				t.Errorf("Changes() after another connection's %q = %+v; want %v reported", d.write, ch, d.key)
			}
			db.Close()

			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if db, err = persist.Open(path, persist.Options{}); err != nil {
				t.Fatal(err)
			}
			db.Close()
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Errorf("a second Open changed the repaired file")
			}
		})
	}
}

// TestRepairWhileOpen checks the same edits made while a DB has the file
// open: its next Changes reports a Reset (the writes made while the log
// missed them are lost to it) and puts the schema back, so that the next
// write by another connection is reported key by key. The edit and a
// write it hides come in one transaction, which nothing can see between.
func TestRepairWhileOpen(t *testing.T) {
	fresh := mustOpen(t, "")
	want := schemaOf(t, fresh.Path())
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			db := mustOpen(t, "")
			path := db.Path()
			apply(t, db, t0, putW("ns", "a", "1", 0), putW("ns", "b", "1", 0))
			changes(t, db)
			edit := append([]string{"BEGIN"}, d.edit...)
			if !d.fails {
				edit = append(edit, d.write)
			}
			execRaw(t, path, append(edit, "COMMIT")...)
			if ch := changes(t, db); !ch.Reset {
				t.Errorf("Changes() after the edit = %+v; want a Reset", ch)
			}
			if got := schemaOf(t, path); got != want {
				t.Errorf("schema after Changes:\n%s\nwant:\n%s", got, want)
			}
			execRaw(t, path, `UPDATE operational_state SET value = 'later' WHERE key = 'b'`)
			if ch := changes(t, db); ch.Reset || !slices.Equal(ch.Keys, keys("ns", "b")) {
				t.Errorf("Changes() after a later write = %+v; want ns/b alone", ch)
			}
		})
	}
}

// TestOpenKeepsAddedColumns checks that columns an application added to
// opstate's tables, which an insert need not name, are left alone: Open
// changes nothing, and writes and the change log work.
func TestOpenKeepsAddedColumns(t *testing.T) {
	path := tempPath(t)
	db, err := persist.Open(path, persist.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	execRaw(t, path, `ALTER TABLE operational_state ADD COLUMN owner TEXT`,
		`ALTER TABLE operational_state ADD COLUMN tier INTEGER NOT NULL DEFAULT 1`,
		`ALTER TABLE operational_state_changes ADD COLUMN note TEXT`)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The file is read only while no connection has it open: nothing but
	// SQLite may open a database file that is in use.
	db, err = persist.Open(path, persist.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("Open changed a file whose tables have columns added")
	}
	db = mustOpen(t, path)
	apply(t, db, t0, putW("ns", "a", "1", 0))
	execRaw(t, path, `UPDATE operational_state SET value = '2', owner = 'app' WHERE key = 'a'`)
	if ch := changes(t, db); ch.Reset || !slices.Equal(ch.Keys, keys("ns", "a")) {
		t.Errorf("Changes() = %+v; want ns/a", ch)
	}
	checkGet(t, db, "ns", "a", &persist.Row{Value: "2"})
}

// TestOpenRefusesForeignSchema checks that Open refuses with ErrSchema,
// leaving the file as it was, a file whose objects of opstate's names
// cannot be put back without losing data; and that a running DB reports
// the same from Changes.
func TestOpenRefusesForeignSchema(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit []string
	}{
		{"operational_state with another column that an insert must name", []string{
			`DROP TABLE operational_state`,
			`CREATE TABLE operational_state (namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, updated_at TEXT NOT NULL, expires_at TEXT, owner TEXT NOT NULL, PRIMARY KEY (namespace, key)) WITHOUT ROWID`}},
		{"operational_state keyed by namespace alone", []string{
			`DROP TABLE operational_state`,
			`CREATE TABLE operational_state (namespace TEXT NOT NULL PRIMARY KEY, key TEXT NOT NULL, value TEXT NOT NULL, updated_at TEXT NOT NULL, expires_at TEXT)`}},
		{"operational_state with a column retyped", []string{
			`DROP TABLE operational_state`,
			`CREATE TABLE operational_state (namespace TEXT NOT NULL, key BLOB NOT NULL, value TEXT NOT NULL, updated_at TEXT NOT NULL, expires_at TEXT, PRIMARY KEY (namespace, key))`}},
		{"operational_state rebuilt without NOT NULL", []string{
			`DROP TABLE operational_state`,
			`CREATE TABLE operational_state (namespace TEXT, key TEXT, value TEXT, updated_at TEXT, expires_at TEXT, PRIMARY KEY (namespace, key))`}},
		{"a view named as the change log", []string{`DROP TABLE operational_state_changes`,
			`CREATE VIEW operational_state_changes AS SELECT 1 AS seq`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := tempPath(t)
			db, err := persist.Open(path, persist.Options{})
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
			execRaw(t, path, tt.edit...)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			db, err = persist.Open(path, persist.Options{})
			if err == nil {
				db.Close()
			}
			if !errors.Is(err, persist.ErrSchema) {
				t.Fatalf("Open() = %v; want ErrSchema", err)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Errorf("Open changed the refused file")
			}
		})
	}
	t.Run("while open", func(t *testing.T) {
		db := mustOpen(t, "")
		execRaw(t, db.Path(), `ALTER TABLE operational_state RENAME COLUMN value TO payload`)
		if _, err := db.Changes(t.Context()); !errors.Is(err, persist.ErrSchema) {
			t.Errorf("Changes() = %v; want ErrSchema", err)
		}
		// Until the schema is fixed, every Changes says so.
		if _, err := db.Changes(t.Context()); !errors.Is(err, persist.ErrSchema) {
			t.Errorf("second Changes() = %v; want ErrSchema", err)
		}
	})
}

// TestRepairWaitsForLock checks that a running DB's repair of a dropped
// trigger waits for another connection's write lock, as writes do, instead
// of failing the check at once: the writer's own busy handler is off, and
// the repair must go through the DB's wait.
func TestRepairWaitsForLock(t *testing.T) {
	db := mustOpen(t, "")
	path := db.Path()
	apply(t, db, t0, putW("ns", "a", "1", 0))
	changes(t, db)
	execRaw(t, path, `DROP TRIGGER operational_state_changes_update`)
	other := rawDB(t, path)
	other.SetMaxOpenConns(1)
	tx, err := other.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`CREATE TABLE IF NOT EXISTS held (x)`); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		tx.Rollback()
	}()
	if ch := changes(t, db); !ch.Reset {
		t.Errorf("Changes() after the trigger was dropped = %+v; want a Reset", ch)
	}
	execRaw(t, path, `UPDATE operational_state SET value = 'later' WHERE key = 'a'`)
	if ch := changes(t, db); ch.Reset || !slices.Equal(ch.Keys, keys("ns", "a")) {
		t.Errorf("Changes() after a later write = %+v; want ns/a alone: the trigger put back", ch)
	}
}
