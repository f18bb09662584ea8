package persist

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
)

// A file at the current version holds what the migrations created, unless
// someone changed it since: the sqlite3 shell drops a trigger as easily as
// it updates a row, and a file whose change-log triggers are gone is one in
// which every Store misses others' writes, and serves its cache as it was,
// for ever. So Open, after migrating, checks the objects it relies on
// against what the migrations create, and puts back what is missing or
// differs, in one transaction; and a DB checks again whenever the schema
// changes under it (see changes.go).
//
// Indexes, triggers and the change log are opstate's own: one that is
// missing is created, one that differs is dropped and created again (the
// log then starts over empty, which every DB reading it takes for a
// Reset). operational_state holds the data: it is created when it is
// missing, and never rebuilt; a table of that name without opstate's
// columns as opstate made them is refused with [ErrSchema]. Columns of the
// application's added to either table are left alone, as long as a write
// that does not name them succeeds: outside the primary key, and NULL or
// with a default.

// schemaObject is one object of the current schema.
type schemaObject struct {
	kind    string   // "table", "index" or "trigger"
	name    string   // its name
	create  string   // the statement that creates it
	columns []string // a table's, as columnsSQL lists them
	data    bool     // a table that holds the user's data: never dropped
}

// stateColumns are operational_state's columns, as columnsSQL lists them.
var stateColumns = []string{
	"namespace TEXT NOT NULL PRIMARY KEY 1",
	"key TEXT NOT NULL PRIMARY KEY 2",
	"value TEXT NOT NULL",
	"updated_at TEXT NOT NULL",
	"expires_at TEXT",
}

// columnsSQL lists the columns of table ?1 in the form of stateColumns,
// with " DEFAULT" after a column that has a default.
const columnsSQL = `SELECT name || ' ' || type
	|| CASE WHEN "notnull" THEN ' NOT NULL' ELSE '' END
	|| CASE WHEN pk > 0 THEN ' PRIMARY KEY ' || pk ELSE '' END
	|| CASE WHEN dflt_value IS NOT NULL THEN ' DEFAULT' ELSE '' END
	FROM pragma_table_info(?1) ORDER BY cid`

// fits reports whether a table of the columns cols serves as one of the
// columns want: it has each of them as it is, and every other column is
// outside the primary key and may be left out of an INSERT.
func fits(cols, want []string) bool {
	for _, w := range want {
		if !slices.Contains(cols, w) {
			return false
		}
	}
	for _, c := range cols {
		switch {
		case slices.Contains(want, c):
		case strings.Contains(c, " PRIMARY KEY "),
			strings.Contains(c, " NOT NULL") && !strings.HasSuffix(c, " DEFAULT"):
			return false
		}
	}
	return true
}

// schema is every object of the current version, in an order in which
// they can be created.
var schema = []schemaObject{
	{kind: "table", name: "operational_state", create: fmt.Sprintf(createTable, "operational_state"), columns: stateColumns, data: true},
	{kind: "index", name: "operational_state_expiry", create: createExpiryIndex},
	{kind: "table", name: "operational_state_changes", create: changeLog[0], columns: []string{
		"seq INTEGER PRIMARY KEY 1",
		"namespace TEXT NOT NULL",
		"key TEXT NOT NULL",
		"expired INTEGER",
	}},
	{kind: "trigger", name: "operational_state_changes_insert", create: changeLog[1]},
	{kind: "trigger", name: "operational_state_changes_update", create: changeLog[2]},
	{kind: "trigger", name: "operational_state_changes_rename", create: changeLog[3]},
	{kind: "trigger", name: "operational_state_changes_delete", create: changeLog[4]},
	{kind: "table", name: "operational_state_history_keep", create: historySchema[0], columns: []string{
		"namespace TEXT PRIMARY KEY 1",
		"keep INTEGER NOT NULL",
	}},
	{kind: "table", name: "operational_state_history", create: historySchema[1], columns: []string{
		"seq INTEGER PRIMARY KEY 1",
		"at TEXT NOT NULL",
		"namespace TEXT NOT NULL",
		"key TEXT NOT NULL",
		"op TEXT NOT NULL",
		"before TEXT",
		"before_expires_at TEXT",
		"after TEXT",
		"after_expires_at TEXT",
		"actor TEXT",
	}},
	{kind: "trigger", name: "operational_state_history_insert", create: historySchema[2]},
	{kind: "trigger", name: "operational_state_history_update", create: historySchema[3]},
	{kind: "trigger", name: "operational_state_history_rename", create: historySchema[4]},
	{kind: "trigger", name: "operational_state_history_delete", create: historySchema[5]},
}

// sameSQL reports whether two CREATE statements are the same but for
// white space and IF NOT EXISTS, which SQLite leaves out of the text it
// keeps in sqlite_schema.
func sameSQL(a, b string) bool {
	norm := func(s string) string {
		return strings.Replace(strings.Join(strings.Fields(s), " "), " IF NOT EXISTS ", " ", 1)
	}
	return norm(a) == norm(b)
}

// schemaRepairs returns the statements that bring the schema on c to the
// current version's, none if it is; ErrSchema if it cannot be done.
func schemaRepairs(ctx context.Context, c *sql.Conn) ([]string, error) {
	type found struct{ kind, table, sql string }
	have := make(map[string]found)
	rows, err := c.QueryContext(ctx, `SELECT name, type, tbl_name, ifnull(sql, '') FROM sqlite_schema`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var name string
		var f found
		if err := rows.Scan(&name, &f.kind, &f.table, &f.sql); err != nil {
			rows.Close()
			return nil, err
		}
		have[name] = f
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var fix []string
	for _, o := range schema {
		f, ok := have[o.name]
		switch {
		case !ok:
			fix = append(fix, o.create)
			continue
		case f.kind != o.kind:
			return nil, fmt.Errorf("%w (%s is a %s, not a %s)", ErrSchema, o.name, f.kind, o.kind)
		case o.kind != "table":
			if f.table != "operational_state" || !sameSQL(f.sql, o.create) {
				fix = append(fix, fmt.Sprintf("DROP %s %q", strings.ToUpper(o.kind), o.name), o.create)
			}
			continue
		}
		cols, err := columns(ctx, c, o.name)
		if err != nil {
			return nil, err
		}
		switch {
		case fits(cols, o.columns):
		case o.data:
			return nil, fmt.Errorf("%w (it holds %s)", ErrSchema, strings.Join(cols, ", "))
		default:
			fix = append(fix, fmt.Sprintf("DROP TABLE %q", o.name), o.create)
		}
	}
	return fix, nil
}

// columns returns the columns of table, as columnsSQL lists them.
func columns(ctx context.Context, c *sql.Conn, table string) ([]string, error) {
	rows, err := c.QueryContext(ctx, columnsSQL, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var col string
		if err := rows.Scan(&col); err != nil {
			return nil, err
		}
		cols = append(cols, col)
	}
	return cols, rows.Err()
}

// repairSchema checks the schema on c, a file at the current version, and
// puts back what is missing or differs, in one transaction, which it takes
// only if something is; it reports whether it changed anything. Before it
// writes, it reads the file whole (quick_check) unless verified.
func repairSchema(ctx context.Context, c *sql.Conn, verified bool) (bool, error) {
	fix, err := schemaRepairs(ctx, c)
	if err != nil || len(fix) == 0 {
		return false, err
	}
	if !verified {
		if err := quickCheck(ctx, c); err != nil {
			return false, err
		}
	}
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return false, fmt.Errorf("repair schema (%s): %w", strings.Join(strings.Fields(fix[0])[:3], " "), err)
	}
	err = func() error {
		// Looked at again under the write lock: another connection may
		// have repaired the schema meanwhile.
		fix, err := schemaRepairs(ctx, c)
		if err != nil {
			return err
		}
		for _, q := range fix {
			if _, err := c.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("repair schema: %s: %w", strings.Join(strings.Fields(q)[:3], " "), err)
			}
		}
		_, err = c.ExecContext(ctx, "COMMIT")
		return err
	}()
	if err != nil {
		c.ExecContext(context.Background(), "ROLLBACK")
		return false, err
	}
	return true, nil
}
