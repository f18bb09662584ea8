package pgstate_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/pgstate/internal/pgtest"
)

// step is what a test checks of a recorded change.
type step struct {
	op            opstate.Op
	key           string
	before, after string
	actor         string
}

func stepOf(c opstate.Change) step {
	return step{op: c.Op, key: c.Key, before: c.Before, after: c.After, actor: c.Actor}
}

// history returns the changes of ns, oldest first.
func history(t *testing.T, s *opstate.Store, ns string) []step {
	t.Helper()
	cs, err := s.History(context.Background(), ns, "", 0)
	if err != nil {
		t.Fatalf("History(%q): %v", ns, err)
	}
	out := make([]step, len(cs))
	for i, c := range cs {
		out[len(cs)-1-i] = stepOf(c)
	}
	return out
}

func setHistory(t *testing.T, s *opstate.Store, ns string, keep int) {
	t.Helper()
	if err := s.SetHistory(ns, keep); err != nil {
		t.Fatalf("SetHistory(%q, %d): %v", ns, keep, err)
	}
}

// TestHistoryStoreWrites makes every kind of write through a Store over
// PostgreSQL, and through a Writer of another actor, to a namespace that
// keeps history, and lets the sweeper delete an expired key: History
// returns each change, in order, with what the key held before and after
// and the actor of the Store (Options.Actor, the sweep's too) or the
// Writer; conditional writes that fail record nothing.
func TestHistoryStoreWrites(t *testing.T) {
	dsn := pgtest.Schema(t)
	s := open(t, dsn, opstate.Options{Actor: "alice", SweepInterval: 20 * time.Millisecond})
	setHistory(t, s, "h", 100)
	bob := s.As("bob")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Set("h", "a", "1"))
	must(s.SetWithTTL("h", "a", "2", time.Hour))
	if ok, err := s.SetIfAbsent("h", "a", "x"); ok || err != nil {
		t.Fatalf("SetIfAbsent of a present key = %v, %v", ok, err)
	}
	if ok, err := bob.SetIfAbsent("h", "b", "1"); !ok || err != nil {
		t.Fatalf("SetIfAbsent = %v, %v", ok, err)
	}
	if ok, err := s.CompareAndSwap("h", "a", "2", "3"); !ok || err != nil {
		t.Fatalf("CompareAndSwap = %v, %v", ok, err)
	}
	if ok, err := s.CompareAndSwap("h", "a", "9", "4"); ok || err != nil {
		t.Fatalf("CompareAndSwap of a wrong old = %v, %v", ok, err)
	}
	if ok, err := bob.CompareAndDelete("h", "b", "1"); !ok || err != nil {
		t.Fatalf("CompareAndDelete = %v, %v", ok, err)
	}
	must(s.Delete("h", "a"))
	must(bob.Set("h", "c", "1"))
	must(s.DeleteNamespace("h"))
	must(s.SetWithTTL("h", "d", "short", time.Millisecond))
	want := []step{
		{opstate.OpSet, "a", "", "1", "alice"},
		{opstate.OpSet, "a", "1", "2", "alice"},
		{opstate.OpSet, "b", "", "1", "bob"},
		{opstate.OpSet, "a", "2", "3", "alice"},
		{opstate.OpDelete, "b", "1", "", "bob"},
		{opstate.OpDelete, "a", "3", "", "alice"},
		{opstate.OpSet, "c", "", "1", "bob"},
		{opstate.OpDelete, "c", "1", "", "alice"},
		{opstate.OpSet, "d", "", "short", "alice"},
		{opstate.OpExpire, "d", "short", "", "alice"}, // the sweeper's
	}
	var got []step
	eventually(t, 5*time.Second, "the sweeper deletes d", func() bool {
		got = history(t, s, "h")
		return len(got) >= len(want)
	})
	if !slices.Equal(got, want) {
		t.Errorf("History =\n\t%v\nwant\n\t%v", got, want)
	}
}

// TestHistoryPsqlEdit edits a namespace that keeps history with psql's
// statements: History serves each change, with no actor.
func TestHistoryPsqlEdit(t *testing.T) {
	dsn := pgtest.Schema(t)
	s := open(t, dsn, opstate.Options{Actor: "alice"})
	setHistory(t, s, "h", 100)
	set(t, s, "h", "k", "by-store")
	raw := rawConn(t, dsn)
	rawExec(t, raw, `UPDATE operational_state SET value = 'by-psql' WHERE namespace = 'h' AND key = 'k'`)
	rawExec(t, raw, `DELETE FROM operational_state WHERE namespace = 'h' AND key = 'k'`)
	want := []step{
		{opstate.OpSet, "k", "", "by-store", "alice"},
		{opstate.OpSet, "k", "by-store", "by-psql", ""},
		{opstate.OpDelete, "k", "by-psql", "", ""},
	}
	if got := history(t, s, "h"); !slices.Equal(got, want) {
		t.Errorf("History =\n\t%v\nwant\n\t%v", got, want)
	}
}

// TestHistoryActorsOfTwoStores writes one key from two Stores of one
// schema in turn, each with its Options.Actor: each change names the
// Store that made it, and either Store can revert the other's change.
func TestHistoryActorsOfTwoStores(t *testing.T) {
	dsn := pgtest.Schema(t)
	a := open(t, dsn, opstate.Options{Actor: "agent-a"})
	b := open(t, dsn, opstate.Options{Actor: "agent-b"})
	setHistory(t, a, "h", 100)
	var want []step
	prev := ""
	for i := range 10 {
		s, actor := a, "agent-a"
		if i%2 == 1 {
			s, actor = b, "agent-b"
		}
		v := fmt.Sprint(i)
		set(t, s, "h", "k", v)
		want = append(want, step{opstate.OpSet, "k", prev, v, actor})
		prev = v
	}
	if got := history(t, b, "h"); !slices.Equal(got, want) {
		t.Errorf("History =\n\t%v\nwant\n\t%v", got, want)
	}
	cs, err := a.History(context.Background(), "h", "k", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Revert(context.Background(), "h", "k", cs[1].Seq); err != nil { // back to 8, b's
		t.Fatalf("Revert: %v", err)
	}
	eventually(t, 2*time.Second, "b serves a's revert", func() bool { return get(t, b, "h", "k") == "8" })
	if cs, _ := b.History(context.Background(), "h", "k", 1); len(cs) != 1 || cs[0].Actor != "agent-a" || cs[0].After != "8" {
		t.Errorf("latest change after the revert = %+v; want agent-a setting 8", cs)
	}
}

// TestHistoryPrunedBySweeper keeps 3 changes of one namespace and turns
// another's history off: the Store's sweeper deletes what is beyond the
// keep and all of the other's, and History of the other then reports
// ErrNoHistory.
func TestHistoryPrunedBySweeper(t *testing.T) {
	dsn := pgtest.Schema(t)
	s := open(t, dsn, opstate.Options{SweepInterval: 20 * time.Millisecond})
	setHistory(t, s, "kept", 3)
	setHistory(t, s, "off", 10)
	for i := range 10 {
		set(t, s, "kept", "k", fmt.Sprint(i))
		set(t, s, "off", "k", fmt.Sprint(i))
	}
	setHistory(t, s, "off", 0)
	raw := rawConn(t, dsn)
	eventually(t, 5*time.Second, "the sweeper prunes", func() bool {
		var n int
		if err := raw.QueryRow(context.Background(), `SELECT count(*) FROM operational_state_history`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 3
	})
	got := history(t, s, "kept")
	want := []step{{opstate.OpSet, "k", "6", "7", got[0].actor}, {opstate.OpSet, "k", "7", "8", got[0].actor}, {opstate.OpSet, "k", "8", "9", got[0].actor}}
	if !slices.Equal(got, want) {
		t.Errorf("History(kept) =\n\t%v\nwant the newest 3\n\t%v", got, want)
	}
	if _, err := s.History(context.Background(), "off", "", 0); !errors.Is(err, opstate.ErrNoHistory) {
		t.Errorf("History of a namespace turned off = %v; want ErrNoHistory", err)
	}
}
