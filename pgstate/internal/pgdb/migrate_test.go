package pgdb_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/d8da9184/opstate/pgstate/internal/pgdb"
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
	if rows != 1 || version != 1 {
		t.Errorf("operational_state_schema holds %d rows, version %d; want 1 row, version 1", rows, version)
	}
}

// TestMigrateNewerRefused marks a schema as from a newer opstate before
// anything else exists in it: Open fails with ErrSchemaVersion and creates
// nothing.
func TestMigrateNewerRefused(t *testing.T) {
	dsn, raw := server(t)
	ctx := context.Background()
	if _, err := raw.Exec(ctx, `CREATE TABLE operational_state_schema (version int NOT NULL); INSERT INTO operational_state_schema VALUES (2)`); err != nil {
		t.Fatal(err)
	}
	db, err := pgdb.Open(ctx, dsn, pgdb.Options{})
	if err == nil {
		db.Close()
	}
	if !errors.Is(err, storage.ErrSchemaVersion) {
		t.Fatalf("Open of a version 2 schema = %v; want ErrSchemaVersion", err)
	}
	var tables int
	if err := raw.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	var version int
	raw.QueryRow(ctx, `SELECT version FROM operational_state_schema`).Scan(&version)
	if tables != 1 || version != 2 {
		t.Errorf("after the refused Open: %d tables, version %d; want 1 table, version 2", tables, version)
	}
}

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
