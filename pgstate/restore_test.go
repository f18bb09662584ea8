package pgstate_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/pgstate"
	"github.com/d8da9184/opstate/pgstate/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// tool returns the path of one of PostgreSQL's client programs, skipping
// the test without it (unless pgtest.Required).
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if pgtest.Required() {
			t.Fatalf("no %s (OPSTATE_REQUIRE_PG=1 or CI=true): %v", name, err)
		}
		t.Skipf("no %s: %v", name, err)
	}
	return p
}

// runTool runs a client program on the test server (OPSTATE_PG_DSN, or
// libpq's PG* variables), failing the test with its output if it fails.
func runTool(t *testing.T, name string, args ...string) {
	t.Helper()
	if dsn := pgtest.BaseDSN(); dsn != "" {
		args = append([]string{"-d", dsn}, args...)
	}
	out, err := exec.Command(tool(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// getIs reports whether s serves v for ns/key; a failed read (the table
// may be gone for a moment) is not.
func getIs(s *opstate.Store, ns, key, v string) bool {
	got, err := s.Get(ns, key)
	return err == nil && got == v
}

// TestDumpRestore restores a pg_dump --clean of a schema with psql behind
// two running Stores' backs, the way an operator rolls state back: as one
// transaction, and statement by statement. The restore drops the table
// and loads the dumped rows before it creates the trigger, so no row
// notifies; within the bound both Stores serve the dumped values all the
// same (a key set after the dump is gone, a key changed since is back),
// their watchers get an OpReset, and they hear later writes again.
func TestDumpRestore(t *testing.T) {
	const ping = 200 * time.Millisecond
	for _, tc := range []struct {
		name string
		args []string // psql's
	}{
		{"single transaction", []string{"-1"}},
		{"statement by statement", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := pgtest.Schema(t)
			a := open(t, dsn, opstate.Options{SyncInterval: ping})
			b := open(t, dsn, opstate.Options{SyncInterval: ping})
			raw := rawConn(t, dsn)
			var schema string
			if err := raw.QueryRow(context.Background(), `SELECT current_schema()`).Scan(&schema); err != nil {
				t.Fatal(err)
			}
			stores := []*opstate.Store{a, b}
			cacheKeys(t, a, stores, "ns", []string{"k"}, "dumped")
			dump := filepath.Join(t.TempDir(), "dump.sql")
			runTool(t, "pg_dump", "--clean", "-n", schema, "-f", dump)
			cacheKeys(t, a, stores, "ns", []string{"k", "later"}, "since")
			evs := []<-chan opstate.Event{watch(t, a, "ns"), watch(t, b, "ns")}
			start := time.Now()
			runTool(t, "psql", append([]string{"-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", dump}, tc.args...)...)
			restored := time.Since(start)
			for i, s := range stores {
				d := eventually(t, 3*time.Second, "serves the restored rows", func() bool {
					return getIs(s, "ns", "k", "dumped") && getIs(s, "ns", "later", "")
				})
				t.Logf("Store %d served the restored rows %v after the restore (which took %v)", i, d, restored)
				if d > 2*ping+500*time.Millisecond {
					t.Errorf("Store %d served the restored rows %v after the restore; want within about 2 ping intervals (%v)", i, d, 2*ping)
				}
				waitOp(t, evs[i], opstate.OpReset, 3*time.Second, "watcher of a restored table")
			}
			checkTriggers(t, raw)
			// Both hear each other's writes again, and serve from cache.
			for _, k := range []string{"k", "later"} {
				eventually(t, 3*time.Second, "not Stale", func() bool { return !a.Stale() && !b.Stale() })
				cacheKeys(t, a, stores, "ns", []string{k}, "after")
				set(t, b, "ns", k, "again")
				eventually(t, 2*time.Second, "a serves b's write after the restore", func() bool { return get(t, a, "ns", k) == "again" })
			}
		})
	}
}

// TestLogicalReplication replicates operational_state from one cluster
// to another with a publication and a subscription: the subscriber's
// apply worker writes as a replica session, with an empty search_path. A
// Store on the subscriber hears every replicated change, TRUNCATE
// included, and the replication goes on.
func TestLogicalReplication(t *testing.T) {
	pub := pgtest.NewCluster(t)
	sub := pgtest.NewCluster(t)
	admin, err := pgx.Connect(context.Background(), pub.DSN)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(context.Background(), `ALTER SYSTEM SET wal_level = logical`); err != nil {
		t.Fatal(err)
	}
	admin.Close(context.Background())
	pub.Restart()
	w := open(t, pub.DSN, opstate.Options{})
	r := open(t, sub.DSN, opstate.Options{})
	pubRaw := rawConn(t, pub.DSN)
	subRaw := rawConn(t, sub.DSN)
	rawExec(t, pubRaw, `CREATE PUBLICATION opstate_pub FOR TABLE operational_state`)
	rawExec(t, subRaw, `CREATE SUBSCRIPTION opstate_sub CONNECTION '`+pub.DSN+`' PUBLICATION opstate_pub`)
	t.Cleanup(func() {
		// The subscription's slot is on pub: drop it while both run.
		c, err := pgx.Connect(context.Background(), sub.DSN)
		if err == nil {
			c.Exec(context.Background(), `DROP SUBSCRIPTION opstate_sub`)
			c.Close(context.Background())
		}
	})
	set(t, w, "ns", "k", "v1")
	eventually(t, 10*time.Second, "the subscriber's table holds the first write", func() bool {
		var v string
		return subRaw.QueryRow(context.Background(), `SELECT value FROM operational_state WHERE key = 'k'`).Scan(&v) == nil && v == "v1"
	})
	if got := get(t, r, "ns", "k"); got != "v1" {
		t.Fatalf("the subscriber's Store serves %q; want v1", got)
	}
	evs := watch(t, r, "ns")
	for i, v := range []string{"v2", "v3", "v4"} {
		set(t, w, "ns", "k", v)
		d := eventually(t, 3*time.Second, "the subscriber's Store serves the replicated write", func() bool { return get(t, r, "ns", "k") == v })
		waitOp(t, evs, opstate.OpSet, 2*time.Second, "watcher of a replicated write")
		t.Logf("write %d served on the subscriber after %v", i, d)
	}
	rawExec(t, pubRaw, `TRUNCATE operational_state`)
	waitOp(t, evs, opstate.OpReset, 3*time.Second, "watcher of a replicated TRUNCATE")
	eventually(t, 2*time.Second, "the subscriber's Store serves the replicated TRUNCATE", func() bool { return get(t, r, "ns", "k") == "" })
	set(t, w, "ns", "k", "after")
	eventually(t, 3*time.Second, "replication goes on", func() bool { return get(t, r, "ns", "k") == "after" })
	var errs int
	if err := subRaw.QueryRow(context.Background(), `SELECT apply_error_count FROM pg_stat_subscription_stats WHERE subname = 'opstate_sub'`).Scan(&errs); err != nil {
		t.Fatal(err)
	}
	if errs != 0 {
		t.Errorf("the apply worker failed %d times; want 0", errs)
	}
}

// TestDataOnlyRestore restores a data-only dump made with
// --disable-triggers (ALTER TABLE ... DISABLE TRIGGER ALL, the rows, then
// ENABLE TRIGGER ALL, which leaves the triggers enabled for ordinary
// sessions only) into the emptied table under two running Stores that
// had cached every key absent: within the bound both serve the restored
// rows, and stay Stale, with Open refused, until the SQL Open's error
// names has run; then they hear writes again.
func TestDataOnlyRestore(t *testing.T) {
	const ping = 200 * time.Millisecond
	dsn := pgtest.Schema(t)
	a := open(t, dsn, opstate.Options{SyncInterval: ping})
	b := open(t, dsn, opstate.Options{SyncInterval: ping})
	raw := rawConn(t, dsn)
	var schema string
	if err := raw.QueryRow(context.Background(), `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	stores := []*opstate.Store{a, b}
	cacheKeys(t, a, stores, "ns", []string{"k"}, "dumped")
	dump := filepath.Join(t.TempDir(), "data.sql")
	runTool(t, "pg_dump", "--data-only", "--disable-triggers", "-t", schema+".operational_state", "-f", dump)
	rawExec(t, raw, `DELETE FROM operational_state`)
	for _, s := range stores {
		eventually(t, 2*time.Second, "serves the delete", func() bool { return get(t, s, "ns", "k") == "" })
	}
	evs := []<-chan opstate.Event{watch(t, a, "ns"), watch(t, b, "ns")}
	runTool(t, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-f", dump)
	for i, s := range stores {
		d := eventually(t, 3*time.Second, "serves the restored rows", func() bool { return getIs(s, "ns", "k", "dumped") })
		t.Logf("Store %d served the restored rows %v after the restore", i, d)
		if d > 2*ping+500*time.Millisecond {
			t.Errorf("Store %d served the restored rows %v after the restore; want within about 2 ping intervals (%v)", i, d, 2*ping)
		}
		waitOp(t, evs[i], opstate.OpStale, 3*time.Second, "watcher of a data-only restore")
		if !s.Stale() {
			t.Errorf("Store %d: Stale() = false with the triggers enabled for ordinary sessions only", i)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s2, err := pgstate.Open(ctx, dsn, opstate.Options{})
	if err == nil {
		s2.Close()
		t.Fatal("Open succeeded after a restore that left the triggers enabled for ordinary sessions only")
	}
	rawExec(t, raw, repairSQL(t, err))
	for i := range stores {
		waitOp(t, evs[i], opstate.OpReset, 3*time.Second, "watcher, once repaired")
	}
	set(t, a, "ns", "k", "after")
	eventually(t, 2*time.Second, "b serves a's write after the repair", func() bool { return get(t, b, "ns", "k") == "after" })
	checkTriggers(t, raw)
}
