package pgdb_test

import (
	"context"
	"testing"
	"time"

	"github.com/d8da9184/opstate/pgstate/internal/pgdb"
	"github.com/d8da9184/opstate/pgstate/internal/pgtest"
	"github.com/d8da9184/opstate/storage"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// server returns a connection string on a new schema of the test's own
// (pgtest.Schema) and a pool on it for checks made behind the DB's back.
func server(t testing.TB) (string, *pgxpool.Pool) {
	t.Helper()
	dsn := pgtest.Schema(t)
	raw, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(raw.Close)
	return dsn, raw
}

// mustOpen opens a DB on a new schema of its own.
func mustOpen(t testing.TB) (*pgdb.DB, string, *pgxpool.Pool) {
	t.Helper()
	dsn, raw := server(t)
	return openDSN(t, dsn, pgdb.Options{}), dsn, raw
}

func openDSN(t testing.TB, dsn string, opts pgdb.Options) *pgdb.DB {
	t.Helper()
	db, err := pgdb.Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// localNow is what a caller would pass as now: the local clock.
func localNow() int64 { return time.Now().UnixMilli() }

// serverNow is the server's clock in Unix milliseconds.
func serverNow(t *testing.T, raw rawPool) int64 {
	t.Helper()
	var ms int64
	if err := raw.QueryRow(context.Background(), `SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint`).Scan(&ms); err != nil {
		t.Fatal(err)
	}
	return ms
}

// apply runs ws as one batch, failing the test on error, and returns
// what each write did.
func apply(t *testing.T, db *pgdb.DB, now int64, ws ...storage.Write) []storage.Result {
	t.Helper()
	res, err := db.Apply(context.Background(), now, ws)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if len(res) != len(ws) {
		t.Fatalf("Apply(%d writes) returned %d results", len(ws), len(res))
	}
	return res
}

func putW(ns, key, value string, ttl time.Duration, now int64) storage.Write {
	w := storage.Write{Kind: storage.Put, Namespace: ns, Key: key, Value: value}
	if ttl != 0 {
		w.ExpiresAt = now + ttl.Milliseconds()
	}
	return w
}

// rawPut stores a row behind the DB's back, expiring ttl after the
// server's now() (no expiry for 0; negative: already expired).
func rawPut(t *testing.T, raw rawPool, ns, key, value string, ttl time.Duration) {
	t.Helper()
	var exp any
	if ttl != 0 {
		exp = ttl.Milliseconds()
	}
	if _, err := raw.Exec(context.Background(), `INSERT INTO operational_state VALUES ($1, $2, $3, now(),
		now() + $4::bigint * interval '1 millisecond')
		ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`, ns, key, value, exp); err != nil {
		t.Fatal(err)
	}
}

// rawGet reads a row behind the DB's back: its value and its remaining
// life by the server's clock, in milliseconds (0 for none).
func rawGet(t *testing.T, raw rawPool, ns, key string) (value string, ttlMS int64, found bool) {
	t.Helper()
	var left *int64
	err := raw.QueryRow(context.Background(), `SELECT value, floor(extract(epoch FROM expires_at - now()) * 1000)::bigint
		FROM operational_state WHERE namespace = $1 AND key = $2`, ns, key).Scan(&value, &left)
	if err == pgx.ErrNoRows {
		return "", 0, false
	}
	if err != nil {
		t.Fatal(err)
	}
	if left != nil {
		ttlMS = *left
	}
	return value, ttlMS, true
}

// rawPool is a pool on a test's schema that bypasses the DB.
type rawPool = *pgxpool.Pool

// pgdbOptions are the Options of most tests.
func pgdbOptions() pgdb.Options { return pgdb.Options{} }
