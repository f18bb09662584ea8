package pgdb

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The history of a namespace (schema version 3; version 4 indexes it
// by (namespace, seq) alone) lives in two tables:
// operational_state_history_keep names the namespaces that keep one, and
// how many changes each; operational_state_history holds the changes. Two
// triggers of operational_state fill it, in the transaction of the change,
// whoever makes it: operational_state_record, a row trigger, for every
// row inserted, updated or deleted in a namespace that keeps history, and
// operational_state_record_truncate for TRUNCATE, which fires no row
// trigger (it records every row of such a namespace as deleted, before
// the table is emptied).
//
// The actor is what the writing transaction set opstate.actor to
// (set_config(..., true), which lasts until its end: Apply does it in the
// batch's first statement); a session that set nothing, psql's, is
// recorded with NULL. The time is now(), the transaction's start, as
// updated_at is. A delete of a row already past its expiry by the server's
// clock is recorded as an expire, as the notify trigger reports it.
//
// Unlike the notify functions, the record functions name their tables
// with the schema they were created in: a trigger function runs with the
// writing session's search_path, which may not find the tables (psql
// naming the table with its schema; logical replication's apply worker
// runs with an empty one), and looking them up by TG_TABLE_SCHEMA would
// take dynamic SQL, planned anew for every row of every write. The schema
// is written into their bodies when they are created (recordFuncsSQL);
// Open re-creates them when it finds them naming another schema (the
// schema was renamed), missing, or changed (repairHistory).

// A row trigger costs every row it fires for, in a namespace with history
// or not: the function's call and its probe of the keep table. So the
// record trigger fires only WHEN the transaction's opstate.record setting
// is not 'off', and a batch of a DB sets it to 'off' in its first
// statement (originSQL) when none of its namespaces keeps history, which
// that statement checks with one probe of the keep table for the whole
// batch. Sessions that set nothing (psql, another client, an opstate
// before version 3) leave it unset: the trigger fires and checks each row.
// A batch that began before a SetHistory committed may thus go
// unrecorded: it was decided before the namespace kept history. A
// session may set it to 'off' itself, to write unrecorded (a bulk load):
// the history is for those who write through opstate, not a tamper-proof
// audit, as psql can delete history rows too.
//
// The probe is a second query the function runs for each row, besides
// the insert of the change, and most of what the function costs beyond
// the insert (docs/performance.md, "One index"). So the same first
// statement sets opstate.record to 'all' when the batch writes one
// namespace and it keeps history, and the function then records without
// the probe; 'on' (a batch of several namespaces, one of which keeps
// history) leaves it probing each row. A batch decided 'all' before
// a SetHistory(ns, 0) committed records its rows, as one decided 'off'
// before SetHistory records none; pruning deletes what a namespace
// without a keep holds. A session that sets 'all' itself records every
// row it writes.

// recordSchemaMark stands for the quoted schema in recordFuncsTemplate.
const recordSchemaMark = "@schema@"

// recordFuncsTemplate creates, or replaces, the record functions, with
// recordSchemaMark where their bodies name the schema of the tables.
const recordFuncsTemplate = `
CREATE OR REPLACE FUNCTION operational_state_record() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE
	who text := nullif(current_setting('opstate.actor', true), '');
	every boolean := current_setting('opstate.record', true) IS NOT DISTINCT FROM 'all';
	moved boolean := false;
	keeps boolean;
BEGIN
	IF TG_OP <> 'INSERT' THEN
		moved := TG_OP = 'DELETE' OR NEW.namespace <> OLD.namespace OR NEW.key <> OLD.key;
		IF moved THEN
			keeps := every;
			IF NOT keeps THEN
				keeps := EXISTS (SELECT 1 FROM @schema@.operational_state_history_keep WHERE namespace = OLD.namespace);
			END IF;
			IF keeps THEN
				INSERT INTO @schema@.operational_state_history (at, namespace, key, op, before, before_expires_at, actor)
				VALUES (now(), OLD.namespace, OLD.key,
					CASE WHEN OLD.expires_at <= now() THEN 'expire' ELSE 'delete' END,
					OLD.value, OLD.expires_at, who);
			END IF;
		END IF;
		IF TG_OP = 'DELETE' THEN
			RETURN NULL;
		END IF;
	END IF;
	keeps := every;
	IF NOT keeps THEN
		keeps := EXISTS (SELECT 1 FROM @schema@.operational_state_history_keep WHERE namespace = NEW.namespace);
	END IF;
	IF keeps THEN
		IF TG_OP = 'UPDATE' AND NOT moved THEN
			INSERT INTO @schema@.operational_state_history (at, namespace, key, op, before, before_expires_at, after, after_expires_at, actor)
			VALUES (now(), NEW.namespace, NEW.key, 'set', OLD.value, OLD.expires_at, NEW.value, NEW.expires_at, who);
		ELSE
			INSERT INTO @schema@.operational_state_history (at, namespace, key, op, after, after_expires_at, actor)
			VALUES (now(), NEW.namespace, NEW.key, 'set', NEW.value, NEW.expires_at, who);
		END IF;
	END IF;
	RETURN NULL;
END $f$;
CREATE OR REPLACE FUNCTION operational_state_record_truncate() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
	INSERT INTO @schema@.operational_state_history (at, namespace, key, op, before, before_expires_at, actor)
	SELECT now(), s.namespace, s.key,
		CASE WHEN s.expires_at <= now() THEN 'expire' ELSE 'delete' END,
		s.value, s.expires_at, nullif(current_setting('opstate.actor', true), '')
	FROM @schema@.operational_state s
	WHERE s.namespace IN (SELECT namespace FROM @schema@.operational_state_history_keep)
	ORDER BY s.namespace, s.key;
	RETURN NULL;
END $f$;
`

// recordFuncsSQL is SQL that runs recordFuncsTemplate for the schema the
// search_path picks (current_schema()).
var recordFuncsSQL = "DO $do$ BEGIN EXECUTE replace($t$" + recordFuncsTemplate +
	"$t$, '" + recordSchemaMark + "', quote_ident(current_schema())); END $do$"

// historyTriggers are the triggers that record history. They are not
// among the triggers a listener checks: one disabled records nothing, but
// loses no Store a change (see the package documentation's "Operators").
var historyTriggers = []trigger{
	// 29: AFTER INSERT OR UPDATE OR DELETE, FOR EACH ROW; skipped in a
	// transaction that set opstate.record to off (recordGateSQL).
	{"operational_state_record", 29, `CREATE TRIGGER operational_state_record AFTER INSERT OR UPDATE OR DELETE ON %[1]s
	FOR EACH ROW WHEN (current_setting('opstate.record', true) IS DISTINCT FROM 'off')
	EXECUTE FUNCTION %[2]soperational_state_record()`},
	// 34: BEFORE TRUNCATE, FOR EACH STATEMENT (2 is BEFORE, 32 TRUNCATE).
	{"operational_state_record_truncate", 34, `CREATE TRIGGER operational_state_record_truncate BEFORE TRUNCATE ON %[1]s
	FOR EACH STATEMENT EXECUTE FUNCTION %[2]soperational_state_record_truncate()`},
}

// historyTablesV3SQL is what schema version 3 created the history's
// tables with: seq its primary key, and two indexes. Version 4
// (migrateV4) replaces the three with the one of historyTablesSQL.
const historyTablesV3SQL = `
CREATE TABLE IF NOT EXISTS operational_state_history_keep (
	namespace text PRIMARY KEY,
	keep      integer NOT NULL CHECK (keep > 0)
);
CREATE TABLE IF NOT EXISTS operational_state_history (
	seq               bigserial PRIMARY KEY,
	at                timestamptz NOT NULL,
	namespace         text NOT NULL,
	key               text NOT NULL,
	op                text NOT NULL CHECK (op IN ('set', 'delete', 'expire')),
	before            text,
	before_expires_at timestamptz,
	after             text,
	after_expires_at  timestamptz,
	actor             text
);
CREATE INDEX IF NOT EXISTS operational_state_history_key ON operational_state_history (namespace, key, seq);
CREATE INDEX IF NOT EXISTS operational_state_history_namespace ON operational_state_history (namespace, seq);
`

// historyTablesSQL creates the history's tables, unless they exist, as
// this version lays them out: the changes with one index, their primary
// key (namespace, seq). Each change a write records costs a heap row and
// one index entry; every query of the history names its namespace
// (history.go). seq stays a bigserial, its sequence owned by the column:
// unique and increasing as the sequence hands it out, though no index of
// its own enforces that.
const historyTablesSQL = `
CREATE TABLE IF NOT EXISTS operational_state_history_keep (
	namespace text PRIMARY KEY,
	keep      integer NOT NULL CHECK (keep > 0)
);
CREATE TABLE IF NOT EXISTS operational_state_history (
	seq               bigserial NOT NULL,
	at                timestamptz NOT NULL,
	namespace         text NOT NULL,
	key               text NOT NULL,
	op                text NOT NULL CHECK (op IN ('set', 'delete', 'expire')),
	before            text,
	before_expires_at timestamptz,
	after             text,
	after_expires_at  timestamptz,
	actor             text,
	PRIMARY KEY (namespace, seq)
);
`

// migrateV3 creates the history's tables, its functions and triggers. It
// may run any number of times.
var migrateV3 = func() string {
	var b strings.Builder
	b.WriteString(historyTablesV3SQL)
	b.WriteString(recordFuncsSQL + ";\n")
	for _, tr := range historyTriggers {
		b.WriteString(tr.install("operational_state", "") + ";\n")
	}
	return b.String()
}()

// migrateV4 gives the history table the one index of historyTablesSQL:
// it drops version 3's two indexes and replaces the primary key on seq
// by one on (namespace, seq), under the table's exclusive lock (writers
// to a namespace with history wait for it; the index is built over the
// history kept). It may run any number of times: a primary key already
// on (namespace, seq) is left as it is. A history table that is missing
// (dropped by hand) is left to repairHistory, which creates it as
// historyTablesSQL does.
const migrateV4 = `
DROP INDEX IF EXISTS operational_state_history_key;
DROP INDEX IF EXISTS operational_state_history_namespace;
DO $do$ BEGIN
	IF to_regclass('operational_state_history') IS NULL THEN
		RETURN;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_constraint c
		WHERE c.conrelid = 'operational_state_history'::regclass AND c.contype = 'p'
		AND (SELECT array_agg(a.attname::text ORDER BY k.i)
			FROM unnest(c.conkey) WITH ORDINALITY AS k(n, i)
			JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n) = ARRAY['namespace', 'seq']) THEN
		ALTER TABLE operational_state_history DROP CONSTRAINT IF EXISTS operational_state_history_pkey;
		ALTER TABLE operational_state_history ADD CONSTRAINT operational_state_history_pkey PRIMARY KEY (namespace, seq);
	END IF;
END $do$;
`

// historyStateSQL reads, for the search_path's schema, whether each record
// function is as recordFuncsTemplate makes it for that schema, and the
// tgtype of each history trigger present.
const historyStateSQL = `SELECT
	coalesce((SELECT p.prosrc = replace(f.src, '` + recordSchemaMark + `', quote_ident(current_schema()))
		FROM pg_proc p WHERE p.oid = to_regprocedure(quote_ident(current_schema()) || '.' || f.name || '()')), false)
	FROM unnest($1::text[], $2::text[]) AS f(name, src)`

// recordFuncBodies are the bodies recordFuncsTemplate gives the record
// functions, by name, as pg_proc.prosrc holds them.
func recordFuncBodies() (names, bodies []string) {
	for _, part := range strings.Split(recordFuncsTemplate, "CREATE OR REPLACE FUNCTION ")[1:] {
		name := part[:strings.Index(part, "(")]
		body := part[strings.Index(part, "$f$")+3:]
		body = body[:strings.Index(body, "$f$")]
		names, bodies = append(names, name), append(bodies, body)
	}
	return names, bodies
}

// repairHistory re-creates, in tx, the history's tables when one is
// missing (the triggers would fail every write), the record functions
// when one is missing or not as recordFuncsTemplate makes it for the
// search_path's schema, and the history triggers that are missing or not
// as install makes them. A trigger that is disabled is left as it is:
// turning it off was an operator's act.
func repairHistory(ctx context.Context, tx pgx.Tx) error {
	var tables bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass('operational_state_history') IS NOT NULL
		AND to_regclass('operational_state_history_keep') IS NOT NULL`).Scan(&tables); err != nil {
		return err
	}
	var sql string
	if !tables {
		sql = historyTablesSQL
	}
	names, bodies := recordFuncBodies()
	rows, err := tx.Query(ctx, historyStateSQL, names, bodies)
	if err != nil {
		return err
	}
	funcsOK := true
	for rows.Next() {
		var ok bool
		if err := rows.Scan(&ok); err != nil {
			rows.Close()
			return err
		}
		if !ok {
			funcsOK = false
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	present := make(map[string]int16)
	rows, err = tx.Query(ctx, `SELECT tgname, tgtype FROM pg_trigger
		WHERE tgrelid = to_regclass('operational_state')
		AND tgname IN ('operational_state_record', 'operational_state_record_truncate')`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var name string
		var tgtype int16
		if err := rows.Scan(&name, &tgtype); err != nil {
			rows.Close()
			return err
		}
		present[name] = tgtype
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if !funcsOK {
		sql += recordFuncsSQL + ";\n"
	}
	for _, tr := range historyTriggers {
		if tgtype, ok := present[tr.name]; !ok || tgtype != tr.tgtype {
			sql += tr.install("operational_state", "") + ";\n"
		}
	}
	if sql == "" {
		return nil
	}
	if _, err := tx.Exec(ctx, sql); err != nil {
		return fmt.Errorf("re-create the history's functions or triggers (as the owner of operational_state): %w", err)
	}
	return nil
}
