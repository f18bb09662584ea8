package opstate_test

import (
	"testing"

	"github.com/d8da9184/opstate"
)

// changeLogTriggers are the triggers that fill the file's change log, each
// with a statement of the sqlite3 shell that it logs, the key that
// statement changes and the value the key then reads.
var changeLogTriggers = []struct {
	name, write, key, want string
}{
	{"operational_state_changes_insert", `INSERT INTO operational_state VALUES ('ns', 'new', 'theirs', '2026-01-01T00:00:00.000Z', NULL)`, "new", "theirs"},
	{"operational_state_changes_update", `UPDATE operational_state SET value = 'theirs' WHERE key = 'x'`, "x", "theirs"},
	{"operational_state_changes_rename", `UPDATE operational_state SET key = 'moved' WHERE key = 'x'`, "x", ""},
	{"operational_state_changes_delete", `DELETE FROM operational_state WHERE key = 'x'`, "x", ""},
}

// TestReopenDroppedTrigger drops each change-log trigger with the sqlite3
// shell while no Store has the file open, and checks that a Store opened
// on it then serves another process's write, which only that trigger
// logs, within its SyncInterval: Open has put the trigger back.
func TestReopenDroppedTrigger(t *testing.T) {
	sh := sqliteShell(t)
	for _, tr := range changeLogTriggers {
		t.Run(tr.name, func(t *testing.T) {
			path := dbPath(t)
			s, err := opstate.Open(path, opstate.Options{})
			if err != nil {
				t.Fatal(err)
			}
			mustSet(t, s, "ns", "x", "ours")
			s.Close()
			shell(t, sh, path, "DROP TRIGGER "+tr.name)

			s = mustOpen(t, path, opstate.Options{})
			wantGet(t, s, "ns", "x", "ours", true) // cached
			wantGet(t, s, "ns", tr.key, map[string]string{"x": "ours"}[tr.key], tr.key == "x")
			shell(t, sh, path, tr.write)
			waitValue(t, s, "ns", tr.key, tr.want)
			if got := shell(t, sh, path, `SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND name = '`+tr.name+`'`); got != "1" {
				t.Errorf("trigger %s after Open: %s of it; want 1", tr.name, got)
			}
		})
	}
}

// TestDroppedTriggerWhileOpen drops each change-log trigger with the
// sqlite3 shell while a Store has the file open, and checks that the Store
// serves another process's writes that only that trigger logs: one made
// in the same transaction as the drop, which the log never sees (the
// schema change makes the Store empty its cache), and one made later,
// after the Store has put the trigger back.
func TestDroppedTriggerWhileOpen(t *testing.T) {
	sh := sqliteShell(t)
	for _, tr := range changeLogTriggers {
		t.Run(tr.name, func(t *testing.T) {
			path := dbPath(t)
			s := mustOpen(t, path, opstate.Options{})
			mustSet(t, s, "ns", "x", "ours")
			mustSet(t, s, "ns", "y", "ours")
			wantGet(t, s, "ns", tr.key, map[string]string{"x": "ours"}[tr.key], tr.key == "x")
			shell(t, sh, path, "BEGIN", "DROP TRIGGER "+tr.name, tr.write, "COMMIT")
			waitValue(t, s, "ns", tr.key, tr.want)

			// The Store put the trigger back before it served that.
			if got := shell(t, sh, path, `SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND name = '`+tr.name+`'`); got != "1" {
				t.Fatalf("trigger %s once the Store served the write: %s of it; want 1", tr.name, got)
			}

			// Later, the same write again, which the trigger logs.
			shell(t, sh, path, `DELETE FROM operational_state WHERE key IN ('new', 'moved')`)
			mustSet(t, s, "ns", "x", "ours")
			waitValue(t, s, "ns", tr.key, map[string]string{"x": "ours"}[tr.key]) // cached
			shell(t, sh, path, tr.write)
			waitValue(t, s, "ns", tr.key, tr.want)
		})
	}
}
