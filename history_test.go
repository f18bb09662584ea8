package opstate_test

import (
	"context"
	"errors"
	"os"
	"os/user"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/internal/persist"
	"github.com/d8da9184/opstate/storage"
)

// lastChange returns the newest change of ns/key.
func lastChange(t *testing.T, s *opstate.Store, ns, key string) opstate.Change {
	t.Helper()
	cs, err := s.History(context.Background(), ns, key, 1)
	if err != nil || len(cs) != 1 {
		t.Fatalf("History(%q, %q, 1) = %+v, %v; want one change", ns, key, cs, err)
	}
	return cs[0]
}

// TestActorOptions checks Options.Actor's default (USER@HOST) and that an
// actor history could not show as it is, given to Open or to As, is
// refused with ErrInvalidOption, writing nothing.
func TestActorOptions(t *testing.T) {
	path := dbPath(t)
	s := mustOpen(t, path, opstate.Options{})
	if err := s.SetHistory("h", 10); err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "h", "k", "v")
	host, _ := os.Hostname()
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if got, want := lastChange(t, s, "h", "k").Actor, name+"@"+host; got != want {
		t.Errorf("default actor = %q; want %q", got, want)
	}
	for _, bad := range []string{"tab\there", "nl\n", "bell\a", strings.Repeat("x", 257), "\xff"} {
		if _, err := opstate.Open(path, opstate.Options{Actor: bad}); !errors.Is(err, opstate.ErrInvalidOption) {
			t.Errorf("Open(Actor %.20q) = %v; want ErrInvalidOption", bad, err)
		}
		w := s.As(bad)
		if err := w.Set("h", "k", "bad"); !errors.Is(err, opstate.ErrInvalidOption) {
			t.Errorf("As(%.20q).Set = %v; want ErrInvalidOption", bad, err)
		}
		if _, err := w.CompareAndSwap("h", "k", "v", "bad"); !errors.Is(err, opstate.ErrInvalidOption) {
			t.Errorf("As(%.20q).CompareAndSwap = %v; want ErrInvalidOption", bad, err)
		}
	}
	wantGet(t, s, "h", "k", "v", true)
	if got := s.As("").Actor(); got != name+"@"+host {
		t.Errorf("As(\"\").Actor() = %q; want the Store's", got)
	}
	ok := strings.Repeat("é", 128) // 256 bytes
	if err := s.As(ok).Set("h", "k", "w"); err != nil {
		t.Errorf("As(256 bytes).Set = %v", err)
	}
}

// TestHistoryPlainSQL checks that a change made with plain SQL, on a
// connection of database/sql's, is recorded with no actor, between
// changes of the Store that are recorded with its own.
func TestHistoryPlainSQL(t *testing.T) {
	path := dbPath(t)
	s := mustOpen(t, path, opstate.Options{Actor: "alice"})
	if err := s.SetHistory("h", 10); err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "h", "k", "1")
	if _, err := sqlDB(t, path).Exec(`UPDATE operational_state SET value = 'by hand' WHERE namespace = 'h' AND key = 'k'`); err != nil {
		t.Fatal(err)
	}
	c := lastChange(t, s, "h", "k")
	if c.Actor != "" || c.Before != "1" || c.After != "by hand" || c.Op != opstate.OpSet {
		t.Errorf("change by plain SQL = %+v; want 1→by hand by no actor", c)
	}
	waitValue(t, s, "h", "k", "by hand")
	mustSet(t, s, "h", "k", "2")
	if c := lastChange(t, s, "h", "k"); c.Actor != "alice" || c.Before != "by hand" {
		t.Errorf("change by the Store after plain SQL = %+v; want by alice", c)
	}
}

// TestHistorySweep checks that the Store's sweep, by its own clock (which
// SQLite's is far behind), records an expiry by the Store's actor, and
// that the background sweeper keeps a namespace to its keep.
func TestHistorySweep(t *testing.T) {
	clk := newClock()
	clk.ns.Store(time.Now().Add(time.Hour).UnixNano())
	s := mustOpen(t, dbPath(t), opstate.Options{Actor: "alice", Clock: clk.Now, SweepInterval: 5 * time.Millisecond})
	if err := s.SetHistory("h", 3); err != nil {
		t.Fatal(err)
	}
	if err := s.As("bob").SetWithTTL("h", "e", "v", time.Minute); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	err := pollUntil(10*time.Second, func() bool {
		cs, err := s.History(context.Background(), "h", "e", 0)
		return err == nil && len(cs) == 2
	})
	if err != nil {
		t.Fatal("the sweeper recorded no expiry of h/e")
	}
	if c := lastChange(t, s, "h", "e"); c.Op != opstate.OpExpire || c.Actor != "alice" || c.Before != "v" {
		t.Errorf("the sweep's change = %+v; want an expiry of v by alice", c)
	}
	for i := range 20 {
		mustSet(t, s, "h", "k", string(rune('a'+i)))
	}
	err = pollUntil(10*time.Second, func() bool {
		cs, err := s.History(context.Background(), "h", "", 0)
		return err == nil && len(cs) == 3 && cs[0].After == "t"
	})
	if err != nil {
		cs, err := s.History(context.Background(), "h", "", 0)
		t.Fatalf("history of h = %d changes, %v; want the last 3 once the sweeper ran", len(cs), err)
	}
}

// pollUntil calls f every few milliseconds until it returns true or
// within has passed.
func pollUntil(within time.Duration, f func() bool) error {
	deadline := time.Now().Add(within)
	for !f() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

// noHistory is a backend that keeps no history: the SQLite backend with
// every method but Backend's hidden.
type noHistory struct{ storage.Backend }

// TestHistoryUnsupported checks that a Store over a backend that keeps no
// history returns ErrUnsupported from the history's methods, and writes
// as any Writer.
func TestHistoryUnsupported(t *testing.T) {
	db, err := persist.Open(dbPath(t), persist.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := opstate.OpenBackend(noHistory{db}, opstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for name, err := range map[string]error{
		"SetHistory": s.SetHistory("h", 1),
		"HistoryKeeps": func() error {
			_, err := s.HistoryKeeps()
			return err
		}(),
		"History": func() error {
			_, err := s.History(ctx, "h", "", 1)
			return err
		}(),
		"HistoryBefore": func() error {
			_, err := s.HistoryBefore(ctx, "h", "k", 5, 1)
			return err
		}(),
		"Revert": s.Revert(ctx, "h", "k", 1),
	} {
		if !errors.Is(err, opstate.ErrUnsupported) {
			t.Errorf("%s = %v; want ErrUnsupported", name, err)
		}
	}
	if err := s.As("bob").Set("h", "k", "v"); err != nil {
		t.Errorf("As(bob).Set = %v", err)
	}
	wantGet(t, s, "h", "k", "v", true)
}
