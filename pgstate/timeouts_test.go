package pgstate_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/pgstate/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// roleDSN creates on c a login role name whose settings (ALTER ROLE ...
// SET) are set, and returns c's DSN as that role.
func roleDSN(t *testing.T, c *pgtest.Cluster, name string, settings ...string) string {
	t.Helper()
	admin := rawConn(t, c.DSN)
	rawExec(t, admin, `CREATE ROLE `+name+` LOGIN SUPERUSER PASSWORD 'role-secret'`)
	for _, s := range settings {
		rawExec(t, admin, `ALTER ROLE `+name+` SET `+s)
	}
	return strings.Replace(c.DSN, c.User+":"+c.Password+"@", name+":role-secret@", 1)
}

// TestStatementTimeout runs a Store as a role with a statement_timeout
// (ALTER ROLE ... SET) shorter than its BusyTimeout: Open migrates all the
// same; a write of a row another transaction holds, and a read of a table
// another transaction has locked, fail with ErrBusy when the server
// cancels them, and the write is not applied.
func TestStatementTimeout(t *testing.T) {
	c := pgtest.NewCluster(t)
	dsn := roleDSN(t, c, "agent", `statement_timeout = '500ms'`)
	s := open(t, dsn, opstate.Options{BusyTimeout: 10 * time.Second})
	set(t, s, "ns", "k", "old")
	raw := rawConn(t, c.DSN)
	ctx := context.Background()
	tx, err := raw.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT 1 FROM operational_state WHERE key = 'k' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = s.Set("ns", "k", "new")
	t.Logf("Set of a locked row: %v after %v", err, time.Since(start))
	if !errors.Is(err, opstate.ErrBusy) {
		t.Errorf("Set of a locked row under statement_timeout = %v; want ErrBusy", err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE operational_state IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("ns", "uncached"); !errors.Is(err, opstate.ErrBusy) {
		t.Errorf("Get of a locked table under statement_timeout = %v; want ErrBusy", err)
	}
	tx.Rollback(ctx)
	var v string
	if err := raw.QueryRow(ctx, `SELECT value FROM operational_state WHERE key = 'k'`).Scan(&v); err != nil || v != "old" {
		t.Errorf("the row holds %q, %v after the failed Set; want old", v, err)
	}
	if got := get(t, s, "ns", "k"); got != "old" {
		t.Errorf("Get after the failed Set = %q; want old", got)
	}
}

// TestIdleSessionTimeout runs a Store whose role's idle_session_timeout
// (500ms) is shorter than its SyncInterval (1s), so that the server ends
// any connection left idle for half a SyncInterval: the Store's listener
// keeps its connection (no outage, no flush), and writes and reads after
// idle pauses longer than the timeout succeed.
func TestIdleSessionTimeout(t *testing.T) {
	c := pgtest.NewCluster(t)
	dsn := roleDSN(t, c, "agent", `idle_session_timeout = '500ms'`)
	s := open(t, dsn, opstate.Options{SyncInterval: time.Second})
	w := open(t, c.DSN, opstate.Options{})
	set(t, s, "ns", "k", "0")
	for i, v := range []string{"1", "2", "3", "4", "5"} {
		time.Sleep(800 * time.Millisecond)
		if err := s.Set("ns", "mine", v); err != nil {
			t.Errorf("Set after an idle pause %d: %v", i, err)
		}
		if _, err := s.Get("ns", "uncached"+v); err != nil {
			t.Errorf("Get after an idle pause %d: %v", i, err)
		}
		set(t, w, "ns", "k", v)
		eventually(t, 2*time.Second, "serves the other Store's write", func() bool {
			got, err := s.Get("ns", "k")
			return err == nil && got == v
		})
	}
	st := s.Stats()
	if st.StreamOutages != 0 || st.Flushes != 0 {
		t.Errorf("Stats() = %d outages, %d flushes in 5s of an idle_session_timeout of 500ms; want 0, 0", st.StreamOutages, st.Flushes)
	}
	// The server's idle_session_timeout held for the Store's role.
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var tmo string
	if err := conn.QueryRow(context.Background(), `SHOW idle_session_timeout`).Scan(&tmo); err != nil || tmo != "500ms" {
		t.Errorf("idle_session_timeout of the role = %q, %v; want 500ms", tmo, err)
	}
}
