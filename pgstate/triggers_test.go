package pgstate_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/pgstate"
	"github.com/d8da9184/opstate/pgstate/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// watch watches ns on s until the test ends.
func watch(t *testing.T, s *opstate.Store, ns string) <-chan opstate.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	evs, err := s.Watch(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// waitOp reads evs, skipping other events, until one of op arrives, and
// fails the test if none does within within.
func waitOp(t *testing.T, evs <-chan opstate.Event, op opstate.Op, within time.Duration, what string) {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case ev := <-evs:
			if ev.Op == op {
				return
			}
		case <-timeout:
			t.Fatalf("%s: no %v within %v", what, op, within)
		}
	}
}

// cacheKeys sets ns/k to v through w for every k of keys, and waits until
// every Store of rs serves them, so that each has them cached.
func cacheKeys(t *testing.T, w *opstate.Store, rs []*opstate.Store, ns string, keys []string, v string) {
	t.Helper()
	for _, k := range keys {
		set(t, w, ns, k, v)
	}
	for _, r := range rs {
		for _, k := range keys {
			eventually(t, 2*time.Second, "serves "+k, func() bool { return get(t, r, ns, k) == v })
		}
	}
}

// TestTruncate empties operational_state with TRUNCATE behind two Stores'
// backs, as an operator with psql would: within the bound, neither serves
// a truncated key any more, and each Store's watchers get an OpReset.
func TestTruncate(t *testing.T) {
	dsn := pgtest.Schema(t)
	a := open(t, dsn, opstate.Options{})
	b := open(t, dsn, opstate.Options{})
	raw := rawConn(t, dsn)
	keys := []string{"k1", "k2", "k3"}
	cacheKeys(t, a, []*opstate.Store{a, b}, "ns", keys, "v")
	evs := []<-chan opstate.Event{watch(t, a, "ns"), watch(t, b, "ns")}
	flushes := []uint64{a.Stats().Flushes, b.Stats().Flushes}
	rawExec(t, raw, `TRUNCATE operational_state`)
	for i, s := range []*opstate.Store{a, b} {
		waitOp(t, evs[i], opstate.OpReset, 3*time.Second, "watcher of a TRUNCATEd table")
		for _, k := range keys {
			if v := get(t, s, "ns", k); v != "" {
				t.Errorf("Store %d: Get(ns, %s) after TRUNCATE = %q; want \"\"", i, k, v)
			}
		}
		if d := s.Stats().Flushes - flushes[i]; d != 1 {
			t.Errorf("Store %d: cache emptied %d times by one TRUNCATE; want 1", i, d)
		}
	}
	// The Stores go on hearing row changes.
	rawExec(t, raw, `INSERT INTO operational_state VALUES ('ns', 'k1', 'after', now(), NULL)`)
	for _, s := range []*opstate.Store{a, b} {
		eventually(t, 2*time.Second, "serves the insert after TRUNCATE", func() bool { return get(t, s, "ns", "k1") == "after" })
	}
}

// TestReplicaRole writes behind a Store's back from a session whose
// session_replication_role is replica, as pg_restore --disable-triggers
// and logical replication's apply workers do: the Store hears the
// update, the delete and a TRUNCATE all the same.
func TestReplicaRole(t *testing.T) {
	dsn := pgtest.Schema(t)
	s := open(t, dsn, opstate.Options{})
	raw := rawConn(t, dsn)
	if _, err := raw.Exec(context.Background(), `SET session_replication_role = replica`); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42501" && !pgtest.Required() {
			t.Skipf("the test server's role may not set session_replication_role: %v", err)
		}
		t.Fatal(err)
	}
	cacheKeys(t, s, []*opstate.Store{s}, "ns", []string{"a", "b"}, "old")
	evs := watch(t, s, "ns")
	rawExec(t, raw, `UPDATE operational_state SET value = 'new' WHERE key = 'a'`)
	eventually(t, 2*time.Second, "serves the replica session's update", func() bool { return get(t, s, "ns", "a") == "new" })
	waitOp(t, evs, opstate.OpSet, 2*time.Second, "watcher of the replica session's update")
	rawExec(t, raw, `DELETE FROM operational_state WHERE key = 'b'`)
	eventually(t, 2*time.Second, "serves the replica session's delete", func() bool { return get(t, s, "ns", "b") == "" })
	waitOp(t, evs, opstate.OpDelete, 2*time.Second, "watcher of the replica session's delete")
	get(t, s, "ns", "a")
	rawExec(t, raw, `TRUNCATE operational_state`)
	waitOp(t, evs, opstate.OpReset, 2*time.Second, "watcher of the replica session's TRUNCATE")
	if v := get(t, s, "ns", "a"); v != "" {
		t.Errorf("Get(ns, a) after the replica session's TRUNCATE = %q; want \"\"", v)
	}
}

// TestTriggerOffWhileRunning turns the notify trigger off behind a
// running Store's back, in each way an operator or a restore does, and
// changes a key meanwhile: within the bound the Store serves the change
// (it reads the server while it cannot trust its cache) and reports
// Stale where the trigger stays off; once the SQL its error names has
// run, it caches and hears changes again.
func TestTriggerOffWhileRunning(t *testing.T) {
	const ping = 200 * time.Millisecond
	cases := []struct {
		name string
		sql  []string // each a transaction, by hand
		// stale: the trigger stays off (or fires only for ordinary
		// sessions) after sql, so the Store stays Stale until repaired.
		stale bool
		// reopen: what repairs it is opening a Store, which re-creates a
		// missing trigger; otherwise the SQL Open's error names.
		reopen bool
	}{
		{"disable all", []string{
			`ALTER TABLE operational_state DISABLE TRIGGER ALL`,
			`UPDATE operational_state SET value = 'new' WHERE key = 'k'`,
		}, true, false},
		{"disable user", []string{
			`ALTER TABLE operational_state DISABLE TRIGGER USER`,
			`UPDATE operational_state SET value = 'new' WHERE key = 'k'`,
		}, true, false},
		// pg_restore --disable-triggers --single-transaction: the trigger
		// is enabled again, but for ordinary sessions only.
		{"restore style", []string{
			`BEGIN; ALTER TABLE operational_state DISABLE TRIGGER ALL;
			UPDATE operational_state SET value = 'new' WHERE key = 'k';
			ALTER TABLE operational_state ENABLE TRIGGER ALL; COMMIT`,
		}, true, false},
		// Back as it was, in the same transaction: nothing is left off,
		// but the Store must still forget what it cached.
		{"off and on in one transaction", []string{
			`BEGIN; ALTER TABLE operational_state DISABLE TRIGGER ALL;
			UPDATE operational_state SET value = 'new' WHERE key = 'k';
			ALTER TABLE operational_state ENABLE ALWAYS TRIGGER operational_state_notify;
			ALTER TABLE operational_state ENABLE ALWAYS TRIGGER operational_state_truncate; COMMIT`,
		}, false, false},
		{"dropped", []string{
			`DROP TRIGGER operational_state_notify ON operational_state`,
			`UPDATE operational_state SET value = 'new' WHERE key = 'k'`,
		}, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dsn := pgtest.Schema(t)
			s := open(t, dsn, opstate.Options{SyncInterval: ping})
			raw := rawConn(t, dsn)
			cacheKeys(t, s, []*opstate.Store{s}, "ns", []string{"k"}, "old")
			evs := watch(t, s, "ns")
			for _, q := range tc.sql {
				rawExec(t, raw, q)
			}
			d := eventually(t, 2*time.Second, "serves the change made with the trigger off", func() bool { return get(t, s, "ns", "k") == "new" })
			t.Logf("served the change after %v", d)
			if d > 2*ping+500*time.Millisecond {
				t.Errorf("served the change after %v; want within about 2 ping intervals (%v)", d, 2*ping)
			}
			if !tc.stale {
				waitOp(t, evs, opstate.OpReset, 2*time.Second, "watcher")
				if s.Stale() {
					t.Error("Stale() = true with the trigger back on")
				}
				return
			}
			waitOp(t, evs, opstate.OpStale, 2*time.Second, "watcher")
			if !s.Stale() {
				t.Error("Stale() = false with the trigger off")
			}
			// Another Store refuses to open while the trigger is off,
			// naming the SQL that turns it back on, which the test runs;
			// or, for a missing trigger, opens and re-creates it.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s2, err := pgstate.Open(ctx, dsn, opstate.Options{})
			switch {
			case err == nil && tc.reopen:
				s2.Close()
			case err == nil:
				s2.Close()
				t.Fatal("Open succeeded with the trigger off")
			case tc.reopen:
				t.Fatalf("Open = %v; want the missing trigger re-created", err)
			default:
				rawExec(t, raw, repairSQL(t, err))
			}
			waitOp(t, evs, opstate.OpReset, 3*time.Second, "watcher, once repaired")
			if s.Stale() {
				t.Error("Stale() = true once repaired")
			}
			rawExec(t, raw, `UPDATE operational_state SET value = 'newer' WHERE key = 'k'`)
			eventually(t, 2*time.Second, "serves a change after the repair", func() bool { return get(t, s, "ns", "k") == "newer" })
			eventually(t, time.Second, "serves from its cache again", func() bool {
				h := s.Stats().Hits
				get(t, s, "ns", "k")
				return s.Stats().Hits > h
			})
		})
	}
}

// repairSQL returns the SQL that err, an error of Open refused for a
// trigger that is off, says to run, checking that it matches
// ErrTriggerDisabled.
func repairSQL(t *testing.T, err error) string {
	t.Helper()
	t.Logf("Open: %v", err)
	if !errors.Is(err, pgstate.ErrTriggerDisabled) {
		t.Fatalf("Open = %v; want ErrTriggerDisabled", err)
	}
	_, fix, ok := strings.Cut(err.Error(), "; run: ")
	if !ok {
		t.Fatalf("Open's error %q names no SQL to run", err)
	}
	return fix
}

// TestOpenTriggerOff opens a Store on a schema whose notify trigger is
// off in each way it can be: Open refuses with ErrTriggerDisabled, naming
// the SQL that turns it back on, and opens once that has run; a trigger
// that is missing is re-created by Open.
func TestOpenTriggerOff(t *testing.T) {
	cases := []struct {
		name, sql string
		refused   bool
	}{
		{"disabled", `ALTER TABLE operational_state DISABLE TRIGGER operational_state_notify`, true},
		{"truncate trigger disabled", `ALTER TABLE operational_state DISABLE TRIGGER operational_state_truncate`, true},
		{"ordinary sessions only", `ALTER TABLE operational_state ENABLE TRIGGER operational_state_notify`, true},
		{"replica sessions only", `ALTER TABLE operational_state ENABLE REPLICA TRIGGER operational_state_notify`, true},
		{"dropped", `DROP TRIGGER operational_state_notify ON operational_state`, false},
		{"both dropped", `DROP TRIGGER operational_state_notify ON operational_state; DROP TRIGGER operational_state_truncate ON operational_state`, false},
		{"function dropped", `DROP FUNCTION operational_state_notify() CASCADE`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dsn := pgtest.Schema(t)
			open(t, dsn, opstate.Options{}).Close()
			raw := rawConn(t, dsn)
			rawExec(t, raw, tc.sql)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := pgstate.Open(ctx, dsn, opstate.Options{})
			if tc.refused {
				if err == nil {
					s.Close()
					t.Fatal("Open succeeded")
				}
				rawExec(t, raw, repairSQL(t, err))
				s = open(t, dsn, opstate.Options{})
			} else if err != nil {
				t.Fatalf("Open = %v; want the trigger re-created", err)
			}
			defer s.Close()
			checkTriggers(t, raw)
			// A negative SyncInterval listens to nothing: such a Store
			// opens whatever the trigger.
			rawExec(t, raw, tc.sql)
			open(t, dsn, opstate.Options{SyncInterval: -1}).Close()
		})
	}
}

// checkTriggers checks that both triggers exist and fire always.
func checkTriggers(t *testing.T, raw *pgx.Conn) {
	t.Helper()
	var on int
	if err := raw.QueryRow(context.Background(), `SELECT count(*) FROM pg_trigger
		WHERE tgrelid = 'operational_state'::regclass AND tgenabled = 'A'
		AND tgname IN ('operational_state_notify', 'operational_state_truncate')`).Scan(&on); err != nil {
		t.Fatal(err)
	}
	if on != 2 {
		t.Errorf("%d of the 2 triggers exist and fire always; want 2", on)
	}
}
