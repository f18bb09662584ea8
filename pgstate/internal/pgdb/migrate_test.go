package pgdb_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate/pgstate/internal/pgdb"
	"github.com/d8da9184/opstate/pgstate/internal/pgtest"
	"github.com/d8da9184/opstate/storage"
)

// TestMigrateConcurrent opens eight DBs at once on a fresh schema: the
// migration (CREATE TABLE without IF NOT EXISTS) runs once, under the
// advisory lock, and every Open succeeds.
func TestMigrateConcurrent(t *testing.T) {
	dsn, raw := server(t)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	start := make(chan struct{})
	for i := range errs {
		wg.Go(func() {
			<-start
			db, err := pgdb.Open(context.Background(), dsn, pgdb.Options{})
			if err == nil {
				db.Close()
			}
			errs[i] = err
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open #%d: %v", i, err)
		}
	}
	var rows, version int
	if err := raw.QueryRow(context.Background(), `SELECT count(*), max(version) FROM operational_state_schema`).Scan(&rows, &version); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || version != pgdb.SchemaVersion {
		t.Errorf("operational_state_schema holds %d rows, version %d; want 1 row, version %d", rows, version, pgdb.SchemaVersion)
	}
}

// TestMigrateNewerRefused marks a schema as from a newer opstate before
// anything else exists in it: Open fails with ErrSchemaVersion and creates
// nothing.
func TestMigrateNewerRefused(t *testing.T) {
	dsn, raw := server(t)
	ctx := context.Background()
	newer := pgdb.SchemaVersion + 1
	if _, err := raw.Exec(ctx, `CREATE TABLE operational_state_schema (version int NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(ctx, `INSERT INTO operational_state_schema VALUES ($1)`, newer); err != nil {
		t.Fatal(err)
	}
	db, err := pgdb.Open(ctx, dsn, pgdb.Options{})
	if err == nil {
		db.Close()
	}
	if !errors.Is(err, storage.ErrSchemaVersion) {
		t.Fatalf("Open of a version %d schema = %v; want ErrSchemaVersion", newer, err)
	}
	var tables, functions int
	if err := raw.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if err := raw.QueryRow(ctx, `SELECT count(*) FROM pg_proc WHERE pronamespace = current_schema()::regnamespace`).Scan(&functions); err != nil {
		t.Fatal(err)
	}
	var version int
	raw.QueryRow(ctx, `SELECT version FROM operational_state_schema`).Scan(&version)
	if tables != 1 || functions != 0 || version != newer {
		t.Errorf("after the refused Open: %d tables, %d functions, version %d; want 1 table, 0 functions, version %d", tables, functions, version, newer)
	}
}

// TestMigrateFromV1 opens a schema made by opstate's schema version 1,
// with rows in it: Open migrates it to this version, keeping the rows,
// makes both triggers fire always and drops version 1's helper function;
// a listener then hears a TRUNCATE.
func TestMigrateFromV1(t *testing.T) {
	dsn, raw := server(t)
	ctx := context.Background()
	rawExec(t, raw, pgdb.Migrations()[0]+`; UPDATE operational_state_schema SET version = 1`)
	rawPut(t, raw, "ns", "k", "v1-row", 0)
	db := openDSN(t, dsn, pgdb.Options{})
	var version int
	if err := raw.QueryRow(ctx, `SELECT version FROM operational_state_schema`).Scan(&version); err != nil || version != pgdb.SchemaVersion {
		t.Errorf("version after Open = %d, %v; want %d", version, err, pgdb.SchemaVersion)
	}
	if v, _, found := rawGet(t, raw, "ns", "k"); !found || v != "v1-row" {
		t.Errorf("row after migration = %q, %v; want v1-row", v, found)
	}
	var always, helpers int
	if err := raw.QueryRow(ctx, `SELECT count(*) FROM pg_trigger WHERE tgrelid = 'operational_state'::regclass AND tgenabled = 'A'`).Scan(&always); err != nil {
		t.Fatal(err)
	}
	if err := raw.QueryRow(ctx, `SELECT count(*) FROM pg_proc WHERE proname = 'operational_state_notify_key' AND pronamespace = current_schema()::regnamespace`).Scan(&helpers); err != nil {
		t.Fatal(err)
	}
	if always != allTriggers || helpers != 0 {
		t.Errorf("after migration: %d triggers firing always, %d helper functions; want %d, 0", always, helpers, allTriggers)
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	l := mustListen(t, lctx, db)
	rawExec(t, raw, `TRUNCATE operational_state`)
	if ch, err := l.Next(lctx); err != nil || !ch.Reset {
		t.Errorf("Next after TRUNCATE = %+v, %v; want a Reset", ch, err)
	}
}

// TestMigrateV2Idempotent runs the migration to version 2 again, by hand,
// on a schema at version 2, twice: it succeeds, and the triggers are as
// Open makes them.
func TestMigrateV2Idempotent(t *testing.T) {
	_, dsn, raw := mustOpen(t)
	for range 2 {
		rawExec(t, raw, pgdb.Migrations()[1])
	}
	openDSN(t, dsn, pgdb.Options{}) // Open repairs nothing, refuses nothing
	var always int
	if err := raw.QueryRow(context.Background(), `SELECT count(*) FROM pg_trigger WHERE tgrelid = 'operational_state'::regclass AND tgenabled = 'A'`).Scan(&always); err != nil || always != allTriggers {
		t.Errorf("%d triggers firing always, %v; want %d", always, err, allTriggers)
	}
}

// allTriggers is how many triggers operational_state has: two that
// notify, two that record history.
const allTriggers = 4

// TestMigrateReopen opens a migrated schema again and finds the data.
func TestMigrateReopen(t *testing.T) {
	db, dsn, _ := mustOpen(t)
	now := localNow()
	apply(t, db, now, putW("ns", "k", "v", 0, now))
	db.Close()
	db2 := openDSN(t, dsn, pgdb.Options{})
	if r, found, err := db2.Get(context.Background(), "ns", "k"); err != nil || !found || r.Value != "v" {
		t.Errorf("Get after reopen = %+v, %v, %v; want v", r, found, err)
	}
}

// TestMigrateOutlastsStatementTimeout opens a schema while another
// session holds the migration's advisory lock longer than the
// connection's statement_timeout: Open waits for it (lock_timeout,
// BusyTimeout, bounds the wait, not statement_timeout) and succeeds.
func TestMigrateOutlastsStatementTimeout(t *testing.T) {
	dsn, raw := server(t)
	ctx := context.Background()
	conn, err := raw.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	const lockClass = 0x6f707374 // migrate.go's
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, hashtext(current_schema()))`, lockClass); err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(600 * time.Millisecond)
		conn.Exec(ctx, `SELECT pg_advisory_unlock($1, hashtext(current_schema()))`, lockClass)
	}()
	db, err := pgdb.Open(ctx, pgtest.WithParam(dsn, "statement_timeout", "100"), pgdb.Options{})
	<-released
	if err != nil {
		t.Fatalf("Open under a 100ms statement_timeout, the migration's lock held 600ms = %v; want success", err)
	}
	db.Close()
}

// TestMigrateFromV2 opens a schema made by opstate's schema version 2,
// with rows in it: Open migrates it to this version, keeping the rows,
// creates the history's tables and triggers, firing always, and changes
// are recorded from then on.
func TestMigrateFromV2(t *testing.T) {
	dsn, raw := server(t)
	ctx := context.Background()
	rawExec(t, raw, pgdb.Migrations()[0]+`; `+pgdb.Migrations()[1]+`; UPDATE operational_state_schema SET version = 2`)
	rawPut(t, raw, "ns", "k", "v2-row", 0)
	db := openDSN(t, dsn, pgdb.Options{})
	var version int
	if err := raw.QueryRow(ctx, `SELECT version FROM operational_state_schema`).Scan(&version); err != nil || version != pgdb.SchemaVersion {
		t.Errorf("version after Open = %d, %v; want %d", version, err, pgdb.SchemaVersion)
	}
	if v, _, found := rawGet(t, raw, "ns", "k"); !found || v != "v2-row" {
		t.Errorf("row after migration = %q, %v; want v2-row", v, found)
	}
	var always int
	if err := raw.QueryRow(ctx, `SELECT count(*) FROM pg_trigger WHERE tgrelid = 'operational_state'::regclass AND tgenabled = 'A'`).Scan(&always); err != nil || always != allTriggers {
		t.Errorf("after migration: %d triggers firing always, %v; want %d", always, err, allTriggers)
	}
	if err := db.SetHistory(ctx, "ns", 10); err != nil {
		t.Fatal(err)
	}
	rawPut(t, raw, "ns", "k", "v3-row", 0)
	cs, err := db.History(ctx, "ns", "k", 0, 10)
	if err != nil || len(cs) != 1 || cs[0].Before != "v2-row" || cs[0].After != "v3-row" {
		t.Errorf("History after migration = %+v, %v; want the change v2-row -> v3-row", cs, err)
	}
}

// TestMigrateV3Idempotent runs the migration to version 3 again, by hand,
// on a schema at version 3 with history in it, twice: it succeeds, keeps
// what was recorded, and Open then finds nothing of the history to
// repair (it migrates the schema to version 4, which changes no function).
func TestMigrateV3Idempotent(t *testing.T) {
	dsn, raw := v3Schema(t)
	ctx := context.Background()
	rawExec(t, raw, `INSERT INTO operational_state_history_keep VALUES ('ns', 10)`)
	rawPut(t, raw, "ns", "k", "v", 0)
	var xmin string
	if err := raw.QueryRow(ctx, `SELECT xmin::text FROM pg_proc WHERE proname = 'operational_state_record' AND pronamespace = current_schema()::regnamespace`).Scan(&xmin); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		rawExec(t, raw, pgdb.Migrations()[2])
	}
	var xmin2 string
	if err := raw.QueryRow(ctx, `SELECT xmin::text FROM pg_proc WHERE proname = 'operational_state_record' AND pronamespace = current_schema()::regnamespace`).Scan(&xmin2); err != nil {
		t.Fatal(err)
	}
	db := openDSN(t, dsn, pgdb.Options{})
	var xmin3 string
	if err := raw.QueryRow(ctx, `SELECT xmin::text FROM pg_proc WHERE proname = 'operational_state_record' AND pronamespace = current_schema()::regnamespace`).Scan(&xmin3); err != nil {
		t.Fatal(err)
	}
	if xmin3 != xmin2 {
		t.Errorf("Open after the migration by hand re-created the record function (xmin %s -> %s); want it left", xmin2, xmin3)
	}
	if cs, err := db.History(ctx, "ns", "", 0, 10); err != nil || len(cs) != 1 {
		t.Errorf("History after the migration by hand = %+v, %v; want the one change", cs, err)
	}
	rawPut(t, raw, "ns", "k", "w", 0)
	if cs, err := db.History(ctx, "ns", "", 0, 10); err != nil || len(cs) != 2 {
		t.Errorf("History after one more change = %d changes, %v; want 2", len(cs), err)
	}
}

// TestMigrateRepairsHistory drops the record trigger and replaces its
// function with one that records nothing (as a function naming a schema
// since renamed would fail): Open re-creates both, and changes are
// recorded again. Then it drops the history's tables: writes fail (the
// trigger cannot record) until Open re-creates them, empty.
func TestMigrateRepairsHistory(t *testing.T) {
	db, dsn, raw := mustOpen(t)
	ctx := context.Background()
	if err := db.SetHistory(ctx, "ns", 10); err != nil {
		t.Fatal(err)
	}
	rawExec(t, raw, `DROP TRIGGER operational_state_record ON operational_state`)
	rawPut(t, raw, "ns", "k", "unrecorded", 0)
	rawExec(t, raw, `CREATE OR REPLACE FUNCTION operational_state_record() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$`)
	openDSN(t, dsn, pgdb.Options{})
	rawPut(t, raw, "ns", "k", "recorded", 0)
	cs, err := db.History(ctx, "ns", "", 0, 10)
	if err != nil || len(cs) != 1 || cs[0].After != "recorded" {
		t.Errorf("History after Open repaired = %+v, %v; want the one change after it", cs, err)
	}
	// The tables dropped: every write fails until Open re-creates them.
	rawExec(t, raw, `DROP TABLE operational_state_history, operational_state_history_keep`)
	now := localNow()
	if _, err := db.Apply(ctx, now, []storage.Write{putW("ns", "k", "failed", 0, now)}); err == nil {
		t.Error("Apply with the history's tables dropped = nil; want the trigger's error")
	}
	openDSN(t, dsn, pgdb.Options{})
	apply(t, db, now, putW("ns", "k", "written", 0, now))
	if keeps, err := db.HistoryKeeps(ctx); err != nil || len(keeps) != 0 {
		t.Errorf("HistoryKeeps after the tables were re-created = %v, %v; want none", keeps, err)
	}
}
