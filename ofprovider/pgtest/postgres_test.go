package pgtest_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/ofprovider"
	"github.com/d8da9184/opstate/pgstate"
	"github.com/jackc/pgx/v5"
	"github.com/open-feature/go-sdk/openfeature"
)

// pgAdmin connects to the test server, as module pgstate's tests do:
// OPSTATE_PG_DSN, or libpq's PG* variables when it is empty (what
// pg_virtualenv sets). Without a server the test skips, unless
// OPSTATE_REQUIRE_PG=1 (which .ci/run sets) or CI=true. It returns the
// connection, closed at cleanup, and the connection string.
func pgAdmin(t *testing.T) (*pgx.Conn, string) {
	t.Helper()
	dsn := os.Getenv("OPSTATE_PG_DSN")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		if os.Getenv("OPSTATE_REQUIRE_PG") == "1" || os.Getenv("CI") == "true" {
			t.Fatalf("no PostgreSQL server (OPSTATE_REQUIRE_PG=1 or CI=true): %v", err)
		}
		t.Skipf("no PostgreSQL server (set OPSTATE_PG_DSN or PGHOST..., or run under pg_virtualenv): %v", err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	return admin, dsn
}

// withParams appends key=value settings to dsn, a URL or the key=value
// form; each overrides what dsn or the PG* variables say.
func withParams(dsn string, kv ...string) string {
	url := strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
	for i := 0; i+1 < len(kv); i += 2 {
		switch {
		case url && strings.Contains(dsn, "?"):
			dsn += "&" + kv[i] + "=" + kv[i+1]
		case url:
			dsn += "?" + kv[i] + "=" + kv[i+1]
		default:
			dsn = strings.TrimSpace(dsn + " " + kv[i] + "=" + kv[i+1])
		}
	}
	return dsn
}

func pgExec(t *testing.T, c *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := c.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func openPG(t *testing.T, dsn string, opts opstate.Options) *opstate.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := pgstate.Open(ctx, dsn, opts)
	if err != nil {
		t.Fatalf("pgstate.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestPostgresStaleThenReady runs the provider over a Store on
// PostgreSQL, connected as a role of the test's own, and kills its
// listener's backend (pg_terminate_backend) while the role may not log
// in, so that the Store cannot listen again until the test lets it: the
// provider sends PROVIDER_STALE and the SDK reports STALE, for as long as
// the role is refused (no PROVIDER_READY meanwhile); once it may log in,
// the Store listens again, the provider sends PROVIDER_READY and a
// configuration change naming the flag another Store changed during the
// outage, and evaluations serve that change, and the changes after it.
func TestPostgresStaleThenReady(t *testing.T) {
	admin, base := pgAdmin(t)
	b := make([]byte, 6)
	rand.Read(b)
	name := "ofprovider_" + hex.EncodeToString(b)
	pgExec(t, admin, "CREATE SCHEMA "+name)
	pgExec(t, admin, "CREATE ROLE "+name+" LOGIN PASSWORD '"+name+"'")
	t.Cleanup(func() { // after the Stores close: cleanups run last first
		admin.Exec(context.Background(), "DROP SCHEMA "+name+" CASCADE")
		admin.Exec(context.Background(), "DROP ROLE "+name)
	})
	pgExec(t, admin, "GRANT USAGE, CREATE ON SCHEMA "+name+" TO "+name)
	// The role's Store opens first, so that its role owns the tables.
	const ping = 200 * time.Millisecond
	r := openPG(t, withParams(base, "user", name, "password", name, "search_path", name, "application_name", name), opstate.Options{SyncInterval: ping})
	w := openPG(t, withParams(base, "search_path", name), opstate.Options{})
	mustSet(t, r, "t", "true")

	c := setProvider(t, ofprovider.New(r, ns))
	e := recordStates(t, c)
	stale, ready, changed := e.stale, e.ready, e.changed
	if err := w.Set(ns, "t", "false"); err != nil {
		t.Fatal(err)
	}
	changed.wait(t, "configuration change naming t, notified", naming("t"))
	wantBool(t, c, "t", false)

	pgExec(t, admin, "ALTER ROLE "+name+" NOLOGIN")
	var killed int
	// The listener's connection is the one whose last statement was its
	// LISTEN or a check; the pool's run the Store's queries.
	err := admin.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND (query LIKE 'LISTEN %' OR query LIKE '-- opstate listener%')`, name).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("terminated %d listener backends, %v; want 1", killed, err)
	}
	stale.wait(t, "PROVIDER_STALE after the listener's backend was terminated", byProvider)
	if !r.Stale() {
		t.Error("Store.Stale() = false while it cannot listen")
	}
	if got := c.State(); got != openfeature.StaleState {
		t.Errorf("State() = %s while the Store cannot listen; want STALE", got)
	}
	if err := w.Set(ns, "t", "true"); err != nil {
		t.Fatal(err)
	}
	ready.none(t, "while the Store cannot listen", 3*ping)

	pgExec(t, admin, "ALTER ROLE "+name+" LOGIN")
	ready.wait(t, "PROVIDER_READY once the Store listens again", byProvider)
	if got := c.State(); got != openfeature.ReadyState {
		t.Errorf("State() = %s after PROVIDER_READY; want READY", got)
	}
	changed.wait(t, "configuration change naming t once the Store listens again", naming("t"))
	wantBool(t, c, "t", true)
	if err := w.Set(ns, "t", "false"); err != nil {
		t.Fatal(err)
	}
	changed.wait(t, "configuration change naming t after the outage, notified", naming("t"))
	wantBool(t, c, "t", false)
}
