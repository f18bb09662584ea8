package persist_test

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/d8da9184/opstate/internal/persist"
)

// originalSchema is the table of the first, SQLite-only opstate.
const originalSchema = `CREATE TABLE operational_state (
	namespace TEXT NOT NULL,
	key TEXT NOT NULL,
	value TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	PRIMARY KEY (namespace, key))`

// legacyRow is a row of a file written before persist existed.
type legacyRow struct {
	ns, key, value, updated string
	expires                 any // nil for NULL, else the stored text
}

// legacy describes a file to build with plain database/sql.
type legacy struct {
	withExpiry bool // the original table plus ADD COLUMN expires_at
	version    int  // PRAGMA user_version
	wal        bool // journal_mode WAL; the default rollback journal otherwise
	rows       []legacyRow
}

// create builds the file at path, as the earlier opstate left it.
func (l legacy) create(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	stmts := []string{originalSchema}
	if l.withExpiry {
		stmts = append(stmts, `ALTER TABLE operational_state ADD COLUMN expires_at TEXT`)
	}
	stmts = append(stmts,
		`CREATE TABLE notes (body TEXT)`, // an unrelated table of the user's
		`INSERT INTO notes VALUES ('keep me')`,
		fmt.Sprintf(`PRAGMA user_version = %d`, l.version))
	if l.wal {
		stmts = append(stmts, `PRAGMA journal_mode = WAL`)
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	for _, r := range l.rows {
		var err error
		if l.withExpiry {
			_, err = db.Exec(`INSERT INTO operational_state VALUES (?, ?, ?, ?, ?)`, r.ns, r.key, r.value, r.updated, r.expires)
		} else {
			_, err = db.Exec(`INSERT INTO operational_state VALUES (?, ?, ?, ?)`, r.ns, r.key, r.value, r.updated)
		}
		if err != nil {
			t.Fatalf("insert %+v: %v", r, err)
		}
	}
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if want := map[bool]string{false: "delete", true: "wal"}[l.wal]; mode != want {
		t.Fatalf("legacy file journal_mode = %q; want %q", mode, want)
	}
}

// dump returns everything a migration may touch in the file at path: the
// schema, every row of every table, user_version. It reads the file with
// plain database/sql.
func dump(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	var v int
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "user_version %d\n", v)
	rows, err := db.Query(`SELECT type, name, tbl_name, ifnull(sql, '') FROM sqlite_schema ORDER BY type, name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var typ, name, tbl, sqlText string
		if err := rows.Scan(&typ, &name, &tbl, &sqlText); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %s on %s: %s\n", typ, name, tbl, sqlText)
		if typ == "table" {
			tables = append(tables, name)
		}
	}
	rows.Close()
	for _, table := range tables {
		fmt.Fprintf(&b, "table %s:\n", table)
		rows, err := db.Query(fmt.Sprintf(`SELECT * FROM %q`, table))
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		var lines []string // sorted, so that the dump does not depend on storage order
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			var line strings.Builder
			for i, v := range vals {
				fmt.Fprintf(&line, " %s=%T(%q)", cols[i], v, fmt.Sprint(v))
			}
			lines = append(lines, line.String())
		}
		rows.Close()
		sort.Strings(lines)
		b.WriteString(strings.Join(lines, "\n") + "\n")
	}
	return b.String()
}

// column returns the text of col in every row of operational_state, keyed
// by namespace and key; NULL reads as "<NULL>".
func column(t *testing.T, path, col string) map[[2]string]string {
	t.Helper()
	rows, err := rawDB(t, path).Query(fmt.Sprintf(`SELECT namespace, key, ifnull(%s, '<NULL>') FROM operational_state`, col))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := make(map[[2]string]string)
	for rows.Next() {
		var ns, key, v string
		if err := rows.Scan(&ns, &key, &v); err != nil {
			t.Fatal(err)
		}
		out[[2]string{ns, key}] = v
	}
	return out
}

// checkMigrated checks what every migrated file has: the current version,
// the expires_at column, the expiry index, WAL mode, and the user's other
// table untouched.
func checkMigrated(t *testing.T, path string) {
	t.Helper()
	raw := rawDB(t, path)
	var v int
	if err := raw.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil || v != persist.SchemaVersion {
		t.Errorf("user_version = %d, %v; want %d", v, err, persist.SchemaVersion)
	}
	var n int
	if err := raw.QueryRow(`SELECT count(*) FROM pragma_table_info('operational_state') WHERE name = 'expires_at' AND type = 'TEXT' AND "notnull" = 0`).Scan(&n); err != nil || n != 1 {
		t.Errorf("nullable TEXT column expires_at: %d, %v; want 1", n, err)
	}
	var indexSQL string
	if err := raw.QueryRow(`SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = 'operational_state_expiry' AND tbl_name = 'operational_state'`).Scan(&indexSQL); err != nil {
		t.Errorf("index operational_state_expiry: %v", err)
	} else if !strings.Contains(indexSQL, "expires_at IS NOT NULL") {
		t.Errorf("index operational_state_expiry = %q; want partial on expires_at IS NOT NULL", indexSQL)
	}
	var mode string
	if err := raw.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	var note string
	if err := raw.QueryRow(`SELECT body FROM notes`).Scan(&note); err != nil || note != "keep me" {
		t.Errorf("unrelated table notes = %q, %v; want its row kept", note, err)
	}
	var check string
	if err := raw.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check = %q, %v; want ok", check, err)
	}
}

// legacyTime reads the time forms an earlier opstate or an operator wrote.
func legacyTime(t *testing.T, s string) int64 {
	t.Helper()
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999"} {
		if tm, err := time.Parse(layout, s); err == nil {
			return tm.UnixMilli()
		}
	}
	t.Fatalf("legacyTime(%q): not a time", s)
	return 0
}

var originalRows = []legacyRow{
	{"agent", "goal", "ship it", "2026-03-07T10:00:00Z", nil},
	{"agent", "quote", `it's "quoted"; --`, "2026-03-06T09:30:15Z", nil},
	{"conv-1", "", "", "2026-03-07 10:00:00", nil},
	{"ns", "unicode", "ünï ✓", "2026-03-07T12:00:00+02:00", nil},
	{"ns", "nul", "a\x00b", "2026-01-01T00:00:00Z", nil},
}

func TestMigrateOriginalSchema(t *testing.T) {
	path := tempPath(t)
	legacy{rows: originalRows}.create(t, path)
	updatedBefore := column(t, path, "updated_at")

	db := mustOpen(t, path)
	checkMigrated(t, path)
	for _, r := range originalRows {
		checkGet(t, db, r.ns, r.key, &persist.Row{Value: r.value})
	}
	// Rows are kept as they are; they gain no expiry.
	if got := column(t, path, "updated_at"); !maps.Equal(got, updatedBefore) {
		t.Errorf("updated_at after migration = %q; want unchanged %q", got, updatedBefore)
	}
	for k, exp := range column(t, path, "expires_at") {
		if exp != "<NULL>" {
			t.Errorf("expires_at of %q = %q; want NULL", k, exp)
		}
	}
	wantNS := []persist.NamespaceCount{{Namespace: "agent", Live: 2}, {Namespace: "conv-1", Live: 1}, {Namespace: "ns", Live: 2}}
	if got := namespaces(t, db, t0); !slices.Equal(got, wantNS) {
		t.Errorf("Namespaces() = %v; want %v", got, wantNS)
	}
	if got, want := list(t, db, "agent", t0), map[string]string{"goal": "ship it", "quote": `it's "quoted"; --`}; !maps.Equal(got, want) {
		t.Errorf("List(%q) = %q; want %q", "agent", got, want)
	}

	// The migrated file takes writes and sweeps as a new one does.
	write(t, db, row{"agent", "goal", "shipped", t0 - ms}, row{"agent", "next", "v", 0})
	if got, want := sweep(t, db, t0, 10), []persist.Key{{Namespace: "agent", Key: "goal"}}; !slices.Equal(got, want) {
		t.Errorf("DeleteExpired(t0, 10) = %v; want %v", got, want)
	}
	checkGet(t, db, "agent", "goal", nil)
	checkGet(t, db, "agent", "next", &persist.Row{Value: "v"})
}

var expiryRows = []legacyRow{
	{"a", "never", "v1", "2026-03-07T10:00:00Z", nil},
	{"a", "future", "v2", "2026-03-07T10:00:00Z", "2099-01-01T00:00:00Z"},
	{"a", "past", "v3", "2026-03-07T10:00:00Z", "2020-01-01T00:00:00Z"},
	{"b", "just past", "v4", "2026-03-07T10:00:00Z", "2026-03-07T09:59:59Z"},
	{"b", "just ahead", "v5", "2026-03-07T10:00:00Z", "2026-03-07 10:00:01"},
	{"b", "offset", "v6", "2026-03-07T10:00:00Z", "2099-06-01T12:00:00+02:00"},
	{"c", "fraction", "v7", "2026-03-07T10:00:00Z", "2026-03-07T10:00:00.5Z"},
	{"c", "garbage", "v8", "2026-03-07T10:00:00Z", "garbage"},
	{"c", "empty", "v9", "2026-03-07T10:00:00Z", ""},
}

func TestMigrateWithExpiry(t *testing.T) {
	path := tempPath(t)
	legacy{withExpiry: true, rows: expiryRows}.create(t, path)
	expiresBefore := column(t, path, "expires_at")

	db := mustOpen(t, path)
	checkMigrated(t, path)
	wantExp := make(map[string]int64)
	for _, r := range expiryRows {
		var want int64
		if s, ok := r.expires.(string); ok && s != "garbage" && s != "" {
			want = legacyTime(t, s)
		}
		wantExp[r.key] = want
		checkGet(t, db, r.ns, r.key, &persist.Row{Value: r.value, ExpiresAt: want})
	}
	// Stored expiries, readable or not, are kept as they are.
	if got := column(t, path, "expires_at"); !maps.Equal(got, expiresBefore) {
		t.Errorf("expires_at after migration = %q; want unchanged %q", got, expiresBefore)
	}

	wantLists := map[string]map[string]string{
		"a": {"never": "v1", "future": "v2"},
		"b": {"just ahead": "v5", "offset": "v6"},
		"c": {"fraction": "v7", "garbage": "v8", "empty": "v9"},
	}
	for ns, want := range wantLists {
		if got := list(t, db, ns, t0); !maps.Equal(got, want) {
			t.Errorf("List(%q, t0) = %q; want %q", ns, got, want)
		}
	}
	wantNS := []persist.NamespaceCount{{Namespace: "a", Live: 2}, {Namespace: "b", Live: 2}, {Namespace: "c", Live: 3}}
	if got := namespaces(t, db, t0); !slices.Equal(got, wantNS) {
		t.Errorf("Namespaces(t0) = %v; want %v", got, wantNS)
	}

	// The sweep takes the earliest expiry first and only what has expired;
	// unreadable expiries never expire.
	steps := []struct {
		now   int64
		limit int
		want  []persist.Key
	}{
		{t0, 1, []persist.Key{{Namespace: "a", Key: "past"}}},
		{t0, 10, []persist.Key{{Namespace: "b", Key: "just past"}}},
		{t0, 10, nil},
		{wantExp["fraction"], 10, []persist.Key{{Namespace: "c", Key: "fraction"}}},
		{wantExp["just ahead"], 10, []persist.Key{{Namespace: "b", Key: "just ahead"}}},
		{time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), 1, []persist.Key{{Namespace: "a", Key: "future"}}},
		{time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), 10, []persist.Key{{Namespace: "b", Key: "offset"}}},
		{time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), 10, nil},
	}
	for i, s := range steps {
		if got := sweep(t, db, s.now, s.limit); !slices.Equal(got, s.want) {
			t.Errorf("step %d: DeleteExpired(%s, %d) = %v; want %v", i, time.Unix(0, s.now).UTC(), s.limit, got, s.want)
		}
	}
	for _, key := range []string{"garbage", "empty"} {
		checkGet(t, db, "c", key, &persist.Row{Value: map[string]string{"garbage": "v8", "empty": "v9"}[key]})
	}
	checkGet(t, db, "a", "never", &persist.Row{Value: "v1"})
}

// TestMigrateIdempotent opens each kind of file twice: the second Open
// changes nothing, not a row and not a byte.
func TestMigrateIdempotent(t *testing.T) {
	tests := []struct {
		name string
		file legacy
	}{
		{"new file", legacy{}},
		{"original schema", legacy{rows: originalRows}},
		{"with expiry", legacy{withExpiry: true, rows: expiryRows}},
		{"with expiry in WAL mode", legacy{withExpiry: true, wal: true, rows: expiryRows}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tempPath(t)
			if tt.name != "new file" {
				tt.file.create(t, path)
			}
			openClose := func() (string, []byte) {
				t.Helper()
				db, err := persist.Open(path, persist.Options{})
				if err != nil {
					t.Fatalf("Open() = %v", err)
				}
				if err := db.Close(); err != nil {
					t.Fatalf("Close() = %v", err)
				}
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				return dump(t, path), b
			}
			dump1, bytes1 := openClose()
			// Every file ends up in the version-1 form, rows in the
			// primary-key B-tree.
			// A connection of its own, closed before openClose reads the
			// file's bytes: a descriptor closed while a connection is open
			// would drop its locks (see file.go).
			raw, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			var ddl string
			err = raw.QueryRow(`SELECT sql FROM sqlite_schema WHERE name = 'operational_state'`).Scan(&ddl)
			raw.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(ddl, "WITHOUT ROWID") {
				t.Errorf("operational_state after Open:\n%s\nwant a WITHOUT ROWID table", ddl)
			}
			dump2, bytes2 := openClose()
			if dump1 != dump2 {
				t.Errorf("second Open changed the database:\nafter first:\n%s\nafter second:\n%s", dump1, dump2)
			}
			if !bytes.Equal(bytes1, bytes2) {
				t.Errorf("second Open changed the file's bytes")
			}
			if tt.name != "new file" {
				checkMigrated(t, path)
			}
		})
	}
}

// TestMigrateNewerVersion opens a file of a later schema: Open refuses it
// with ErrSchemaVersion and leaves it exactly as it was.
func TestMigrateNewerVersion(t *testing.T) {
	for _, wal := range []bool{false, true} {
		t.Run(fmt.Sprintf("wal=%v", wal), func(t *testing.T) {
			path := tempPath(t)
			legacy{withExpiry: true, version: persist.SchemaVersion + 1, wal: wal, rows: expiryRows}.create(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			db, err := persist.Open(path, persist.Options{})
			if err == nil {
				db.Close()
			}
			if !errors.Is(err, persist.ErrSchemaVersion) {
				t.Fatalf("Open(file at version %d) = %v; want ErrSchemaVersion", persist.SchemaVersion+1, err)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				i := 0
				for i < min(len(before), len(after)) && before[i] == after[i] {
					i++
				}
				t.Errorf("refused file changed: %d bytes before, %d after, first difference at offset %d", len(before), len(after), i)
			}
			if s := sidecars(path); len(s) != 0 {
				t.Errorf("Open left %q next to the refused file; want nothing", s)
			}
		})
	}
}

// TestMigrateFreshSchema checks the table a new file gets against the
// documented schema.
func TestMigrateFreshSchema(t *testing.T) {
	db := mustOpen(t, "")
	rows, err := rawDB(t, db.Path()).Query(`SELECT name, type, "notnull", pk FROM pragma_table_info('operational_state') ORDER BY cid`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var name, typ string
		var notNull, pk int
		if err := rows.Scan(&name, &typ, &notNull, &pk); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %s notnull=%d pk=%d", name, typ, notNull, pk))
	}
	want := []string{
		"namespace TEXT notnull=1 pk=1",
		"key TEXT notnull=1 pk=2",
		"value TEXT notnull=1 pk=0",
		"updated_at TEXT notnull=1 pk=0",
		"expires_at TEXT notnull=0 pk=0",
	}
	if !slices.Equal(got, want) {
		t.Errorf("columns of operational_state = %q; want %q", got, want)
	}
	var v int
	if err := rawDB(t, db.Path()).QueryRow(`PRAGMA user_version`).Scan(&v); err != nil || v != persist.SchemaVersion {
		t.Errorf("user_version = %d, %v; want %d", v, err, persist.SchemaVersion)
	}
}

// TestMigrateConcurrentOpens opens one legacy file from several goroutines
// at once, in a few rounds: every Open succeeds (switching a file to WAL
// takes a lock SQLite's busy handler does not wait for, so Open retries it)
// and the file is migrated once, rows intact.
func TestMigrateConcurrentOpens(t *testing.T) {
	for round := range 5 {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("state-%d.db", round))
		legacy{withExpiry: true, rows: expiryRows}.create(t, path)
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		dbs := make([]*persist.DB, n)
		for i := range n {
			wg.Go(func() {
				dbs[i], errs[i] = persist.Open(path, persist.Options{})
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d: Open #%d = %v", round, i, err)
				continue
			}
			t.Cleanup(func() { dbs[i].Close() })
		}
		checkMigrated(t, path)
		for _, db := range dbs {
			if db == nil {
				continue
			}
			for _, r := range expiryRows {
				got, ok, err := db.Get(t.Context(), r.ns, r.key)
				if err != nil || !ok || got.Value != r.value {
					t.Errorf("Get(%q, %q) = %+v, %v, %v; want value %q", r.ns, r.key, got, ok, err, r.value)
				}
			}
		}
	}
}

// TestMigrateNowExpiry opens a legacy file in which an operator set an
// expiry to the text 'now', which SQLite's date functions read as the
// current time. Open must not fail on a row's content: the migration keeps
// rows as they are.
func TestMigrateNowExpiry(t *testing.T) {
	path := tempPath(t)
	rows := append(slices.Clone(expiryRows), legacyRow{"d", "now", "v10", "2026-03-07T10:00:00Z", "now"})
	legacy{withExpiry: true, rows: rows}.create(t, path)
	db, err := persist.Open(path, persist.Options{})
	if err != nil {
		t.Fatalf("Open(legacy file with expires_at = 'now') = %v; want the file opened", err)
	}
	defer db.Close()
	got, ok, err := db.Get(t.Context(), "d", "now")
	if err != nil || !ok || got.Value != "v10" {
		t.Errorf("Get(%q, %q) = %+v, %v, %v; want value %q", "d", "now", got, ok, err, "v10")
	}
}

// TestMigrateDamagedLegacyFile damages one page of a rollback-journal file
// of the SQLite-only opstate: a page of operational_state, which the
// migration copies, or the page of the user's own table notes, which it
// does not read. Open must refuse either with ErrCorrupt before writing to
// the file: the file byte for byte as it was (no switch to WAL, no changed
// change counter), with no -wal, -shm or -journal left beside it.
func TestMigrateDamagedLegacyFile(t *testing.T) {
	var rows []legacyRow
	for i := range 300 {
		rows = append(rows, legacyRow{"ns", fmt.Sprintf("key%05d", i), strings.Repeat("v", 400), "2026-03-07T10:00:00Z", nil})
	}
	for _, table := range []string{"operational_state", "notes"} {
		t.Run(table, func(t *testing.T) {
			path := tempPath(t)
			legacy{withExpiry: true, rows: rows}.create(t, path)
			raw, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			var root int64
			err = raw.QueryRow(`SELECT rootpage FROM sqlite_schema WHERE name = ?`, table).Scan(&root)
			raw.Close() // before the file is read: see persist/file.go on POSIX locks
			if err != nil {
				t.Fatal(err)
			}
			content, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			const pageSize = 4096
			if int64(len(content)) < root*pageSize {
				t.Fatalf("file of %d bytes has no page %d", len(content), root)
			}
			page := content[(root-1)*pageSize : root*pageSize]
			for i := range page {
				page[i] = byte(i*7 + 3)
			}
			path = filepath.Join(t.TempDir(), "damaged.db")
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := persist.Open(path, persist.Options{})
			if err == nil {
				db.Close()
			}
			if !errors.Is(err, persist.ErrCorrupt) {
				t.Errorf("Open(legacy file with page %d of %s damaged) = %v; want ErrCorrupt", root, table, err)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(content, after) {
				i := 0
				for i < min(len(content), len(after)) && content[i] == after[i] {
					i++
				}
				t.Errorf("refused file changed: %d bytes before, %d after, first difference at offset %d", len(content), len(after), i)
			}
			if s := sidecars(path); len(s) != 0 {
				t.Errorf("Open left %q next to the refused file; want nothing", s)
			}
		})
	}
}
