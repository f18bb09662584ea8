// Package pgtest gives tests of module pgstate a PostgreSQL schema of
// their own on the test server.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BaseDSN is the server the tests use: OPSTATE_PG_DSN, or libpq's PG*
// variables when it is empty (what pg_virtualenv sets).
func BaseDSN() string { return os.Getenv("OPSTATE_PG_DSN") }

// Required reports whether a missing server fails the tests instead of
// skipping them: with OPSTATE_REQUIRE_PG=1, which .ci/run sets, or
// CI=true.
func Required() bool {
	return os.Getenv("OPSTATE_REQUIRE_PG") == "1" || os.Getenv("CI") == "true"
}

// WithParam appends a runtime parameter to dsn, a URL or key=value form.
func WithParam(dsn, k, v string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return dsn + sep + k + "=" + v
	}
	return strings.TrimSpace(dsn + " " + k + "=" + v)
}

// Schema returns a connection string whose search_path is a new schema of
// the test's own, dropped at cleanup. Without a server the test skips,
// unless Required.
func Schema(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, BaseDSN())
	if err != nil {
		if Required() {
			t.Fatalf("no PostgreSQL server (OPSTATE_REQUIRE_PG=1 or CI=true): %v", err)
		}
		t.Skipf("no PostgreSQL server (set OPSTATE_PG_DSN or PGHOST..., or run under pg_virtualenv): %v", err)
	}
	defer admin.Close(ctx)
	b := make([]byte, 6)
	rand.Read(b)
	schema := "opstate_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), BaseDSN())
		if err == nil {
			c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			c.Close(context.Background())
		}
	})
	return WithParam(BaseDSN(), "search_path", schema)
}
