package pgdb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// resetPayload is the notification that means "anything may have
// changed": one change of scope all (see decode). The TRUNCATE trigger
// and operational_state_reset send it; it names no origin, so that every
// Store hears it.
const resetPayload = `{"c":[[]]}`

// triggerFuncsSQL creates, or replaces, the functions of the triggers
// (schema version 2). Their bodies name nothing outside pg_catalog, which
// every session searches, so that they run whatever the writing session's
// search_path: logical replication's apply worker runs with an empty one,
// and psql may name the table with its schema.
//
// operational_state_notify notifies every row a statement inserts,
// updates or deletes. A payload is a JSON object, text whatever the
// strings hold: "o" the origin of the transaction (originSQL) when it has
// one, and "c" the changes, each an array: [namespace, key];
// [namespace, key, true] for the delete of a row that had expired by the
// server's clock (a sweep); [namespace] when the key does not fit what
// pg_notify carries (8000 bytes; 7900 leaves room), which means anything
// in the namespace may have changed; [] when even the namespace does not:
// anything at all. An update that renames a row notifies its old key
// too. It is a row trigger: one pg_notify per row. Statement-level
// triggers, with one notification for a statement's rows, cost a lone
// upsert a third more here (it fires both the INSERT and the UPDATE
// statement trigger, each with its transition table), while the Store's
// batches already put their Puts in one statement.
//
// operational_state_notify_truncate notifies a TRUNCATE, which fires no
// row trigger, as a change of anything.
//
// operational_state_reset(schema) lets an operator tell every Store of a
// schema, the search_path's first by default, to forget what it cached.
var triggerFuncsSQL = `
CREATE OR REPLACE FUNCTION operational_state_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	ch text := ` + channelSQL("TG_TABLE_SCHEMA") + `;
	head text := '{' || coalesce('"o":' || to_json(nullif(current_setting('opstate.origin', true), ''))::text || ',', '') || '"c":[';
	nss text[];
	ks text[];
	xs boolean[];
	e text;
BEGIN
	IF TG_OP = 'DELETE' THEN
		nss := ARRAY[OLD.namespace]; ks := ARRAY[OLD.key];
		xs := ARRAY[coalesce(OLD.expires_at <= now(), false)];
	ELSIF TG_OP = 'UPDATE' AND (NEW.namespace <> OLD.namespace OR NEW.key <> OLD.key) THEN
		nss := ARRAY[OLD.namespace, NEW.namespace]; ks := ARRAY[OLD.key, NEW.key];
		xs := ARRAY[false, false];
	ELSE
		nss := ARRAY[NEW.namespace]; ks := ARRAY[NEW.key]; xs := ARRAY[false];
	END IF;
	FOR i IN 1 .. array_length(nss, 1) LOOP
		IF xs[i] THEN
			e := json_build_array(nss[i], ks[i], true)::text;
		ELSE
			e := json_build_array(nss[i], ks[i])::text;
		END IF;
		IF octet_length(head) + octet_length(e) > 7900 THEN
			e := json_build_array(nss[i])::text;
			IF octet_length(head) + octet_length(e) > 7900 THEN
				e := '[]';
			END IF;
		END IF;
		PERFORM pg_notify(ch, head || e || ']}');
	END LOOP;
	RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION operational_state_notify_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify(` + channelSQL("TG_TABLE_SCHEMA") + `, '` + resetPayload + `');
	RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION operational_state_reset(schema_name text DEFAULT current_schema()) RETURNS void LANGUAGE sql AS $$
	SELECT pg_notify(` + channelSQL("$1") + `, '` + resetPayload + `')
$$;
`

// A trigger is one of the triggers every Store relies on.
type trigger struct {
	name string
	// tgtype is pg_trigger.tgtype as create makes it: 29 is AFTER INSERT
	// OR UPDATE OR DELETE, FOR EACH ROW; 32 AFTER TRUNCATE, FOR EACH
	// STATEMENT.
	tgtype int16
	// create is its CREATE TRIGGER: %[1]s the table, %[2]s the prefix of
	// its function's name (its schema and a dot, or nothing).
	create string
}

var triggers = []trigger{
	{"operational_state_notify", 29, `CREATE TRIGGER operational_state_notify AFTER INSERT OR UPDATE OR DELETE ON %[1]s
	FOR EACH ROW EXECUTE FUNCTION %[2]soperational_state_notify()`},
	{"operational_state_truncate", 32, `CREATE TRIGGER operational_state_truncate AFTER TRUNCATE ON %[1]s
	FOR EACH STATEMENT EXECUTE FUNCTION %[2]soperational_state_notify_truncate()`},
}

// install returns the SQL that (re)creates tr on table, its function
// named with prefix, firing always: in sessions whose
// session_replication_role is replica too (pg_restore
// --disable-triggers, logical replication's apply worker), which an
// ordinarily enabled trigger skips.
func (tr trigger) install(table, prefix string) string {
	return fmt.Sprintf("DROP TRIGGER IF EXISTS %[2]s ON %[1]s;\n%[3]s;\nALTER TABLE %[1]s ENABLE ALWAYS TRIGGER %[2]s",
		table, tr.name, fmt.Sprintf(tr.create, table, prefix))
}

// migrateV2 makes TRUNCATE notify, makes both triggers fire always and
// their functions independent of the search_path. It may run any number
// of times: Open runs its parts again to re-create a trigger found
// missing.
var migrateV2 = func() string {
	var b strings.Builder
	b.WriteString(triggerFuncsSQL)
	for _, tr := range triggers {
		b.WriteString(tr.install("operational_state", "") + ";\n")
	}
	// The function of version 1's trigger, which the new one inlines.
	b.WriteString("DROP FUNCTION IF EXISTS operational_state_notify_key(text, text, text, text, boolean);\n")
	return b.String()
}()

// triggerStateSQL reads the triggers of the table operational_state
// that the search_path finds, as every statement of the DB does: one row
// per trigger of triggers present, or one of NULLs when neither is, and
// none when the table is missing. Its xmin changes with every change of
// a trigger (ENABLE, DISABLE, re-creation), even one undone in the same
// transaction; VACUUM, which freezes rows, keeps it.
const triggerStateSQL = `SELECT n.nspname, t.tgname, t.oid::bigint, t.xmin::text, t.tgtype, t.tgenabled::text
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	LEFT JOIN pg_trigger t ON t.tgrelid = c.oid AND t.tgname IN ('operational_state_notify', 'operational_state_truncate')
	WHERE c.oid = to_regclass('operational_state')`

// triggerState is what triggerStateSQL read.
type triggerState struct {
	// schema holds the table; "" when it is missing.
	schema string
	// rows are the triggers present, by name.
	rows map[string]triggerRow
}

type triggerRow struct {
	oid     int64
	xmin    string
	tgtype  int16
	enabled string // pg_trigger.tgenabled: O, D, R or A
}

// querier runs a query: a connection, a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// readTriggers runs sql, triggerStateSQL or a variant, on q.
func readTriggers(ctx context.Context, q querier, sql string) (triggerState, error) {
	rows, err := q.Query(ctx, sql)
	if err != nil {
		return triggerState{}, err
	}
	defer rows.Close()
	st := triggerState{rows: make(map[string]triggerRow)}
	for rows.Next() {
		var name, xmin, enabled *string
		var oid *int64
		var tgtype *int16
		if err := rows.Scan(&st.schema, &name, &oid, &xmin, &tgtype, &enabled); err != nil {
			return triggerState{}, err
		}
		if name != nil {
			st.rows[*name] = triggerRow{oid: *oid, xmin: *xmin, tgtype: *tgtype, enabled: *enabled}
		}
	}
	return st, rows.Err()
}

// table is the table's name, quoted and qualified, for SQL in messages.
func (st triggerState) table() string {
	return pgx.Identifier{st.schema, "operational_state"}.Sanitize()
}

// broken returns the triggers missing, or not as install makes them.
func (st triggerState) broken() []trigger {
	var out []trigger
	for _, tr := range triggers {
		if r, ok := st.rows[tr.name]; !ok || r.tgtype != tr.tgtype {
			out = append(out, tr)
		}
	}
	return out
}

// err returns nil when both triggers are as install makes them, firing
// always; otherwise an error matching ErrTriggerDisabled that says what
// is wrong and, after "; run: ", the SQL that repairs it.
func (st triggerState) err() error {
	if st.schema == "" {
		return errors.New("opstate: table operational_state not found on the search_path")
	}
	var what, fix []string
	table := st.table()
	for _, tr := range triggers {
		r, ok := st.rows[tr.name]
		switch {
		case !ok || r.tgtype != tr.tgtype:
			state := "is missing"
			if ok {
				state = "is not as opstate made it"
			}
			what = append(what, fmt.Sprintf("trigger %s of %s %s (opening a Store re-creates it)", tr.name, table, state))
			fix = append(fix, tr.install(table, pgx.Identifier{st.schema}.Sanitize()+"."))
			continue
		case r.enabled == "A":
			continue
		case r.enabled == "D":
			what = append(what, fmt.Sprintf("trigger %s of %s is disabled", tr.name, table))
		case r.enabled == "O":
			what = append(what, fmt.Sprintf("trigger %s of %s fires only in sessions whose session_replication_role is origin, not in pg_restore --disable-triggers or logical replication", tr.name, table))
		default:
			what = append(what, fmt.Sprintf("trigger %s of %s fires only in sessions whose session_replication_role is replica", tr.name, table))
		}
		fix = append(fix, fmt.Sprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER %s", table, tr.name))
	}
	if what == nil {
		return nil
	}
	return fmt.Errorf("%w: %s; run: %s", ErrTriggerDisabled, strings.Join(what, "; "), strings.Join(fix, "; "))
}

// fingerprint is a summary of the triggers that changes with any change
// to them: the same triggers, untouched, have the same one.
func (st triggerState) fingerprint() string {
	names := make([]string, 0, len(st.rows))
	for name := range st.rows {
		names = append(names, name)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteString(st.schema)
	for _, name := range names {
		r := st.rows[name]
		fmt.Fprintf(&b, "|%s/%d/%s/%d/%s", name, r.oid, r.xmin, r.tgtype, r.enabled)
	}
	return b.String()
}

// repairTriggers re-creates, in tx, the triggers that are missing or not
// as install makes them, and their functions; a trigger that is disabled
// is left as it is, for Listen to refuse: turning it off was an
// operator's act.
func repairTriggers(ctx context.Context, tx pgx.Tx) error {
	st, err := readTriggers(ctx, tx, triggerStateSQL)
	if err != nil {
		return err
	}
	broken := st.broken()
	if len(broken) == 0 {
		return nil
	}
	sql := triggerFuncsSQL
	for _, tr := range broken {
		sql += tr.install("operational_state", "") + ";\n"
	}
	if _, err := tx.Exec(ctx, sql); err != nil {
		return fmt.Errorf("re-create trigger %s (as the owner of operational_state): %w", broken[0].name, err)
	}
	return nil
}
