package cli

import (
	"database/sql"
	"testing"
)

// TestNonTextNames checks that the command agrees with the library on rows
// written by hand whose namespace or key is not TEXT: a BLOB is no key
// (get finds nothing, list and ns leave it out), a number stored as text
// by the column's affinity is one.
func TestNonTextNames(t *testing.T) {
	for _, tt := range []struct {
		name, insert string
		get          []string // a get of what the row's bytes spell
		found        bool
		list, ns     string
	}{
		{"blob key", `INSERT INTO operational_state VALUES ('ns', CAST('k' AS BLOB), 'v', '2026-01-01T00:00:00.000Z', NULL)`,
			[]string{"ns", "k"}, false, "text\tv\n", "ns\t1\n"},
		{"blob namespace", `INSERT INTO operational_state VALUES (CAST('ns' AS BLOB), 'k', 'v', '2026-01-01T00:00:00.000Z', NULL)`,
			[]string{"ns", "k"}, false, "text\tv\n", "ns\t1\n"},
		{"integer key", `INSERT INTO operational_state VALUES ('ns', 5, 'v', '2026-01-01T00:00:00.000Z', NULL)`,
			[]string{"ns", "5"}, true, "5\tv\ntext\tv\n", "ns\t2\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := dbPath(t)
			mustRun(t, db, "set", "ns", "text", "v")
			raw, err := sql.Open("sqlite", db)
			if err != nil {
				t.Fatal(err)
			}
			_, err = raw.Exec(tt.insert)
			raw.Close()
			if err != nil {
				t.Fatal(err)
			}
			args := append([]string{"-db", db, "get"}, tt.get...)
			code, stdout, stderr := runCLI(t, "", args...)
			if tt.found && (code != exitOK || stdout != "v\n") || !tt.found && (code != exitFail || stdout != "") || stderr != "" {
				t.Errorf("run(%q) = %d, %q, %q; want found %v", args, code, stdout, stderr, tt.found)
			}
			if got := mustRun(t, db, "list", "ns"); got != tt.list {
				t.Errorf("list ns printed %q; want %q", got, tt.list)
			}
			if got := mustRun(t, db, "ns"); got != tt.ns {
				t.Errorf("ns printed %q; want %q", got, tt.ns)
			}
		})
	}
}
