package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// testHistory runs the history's tests: skipped, each, over a backend
// that keeps no history (SetHistory returns opstate.ErrUnsupported).
func testHistory(t *testing.T, c Config) {
	for _, tc := range []struct {
		name string
		run  func(*testing.T, Config)
	}{
		{"RecordsEveryWrite", testHistoryWrites},
		{"Expire", testHistoryExpire},
		{"Off", testHistoryOff},
		{"Keep", testHistoryKeep},
		{"Paging", testHistoryPaging},
		{"Revert", testRevert},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, c) })
	}
}

// historyStore opens a Store writing as actor and makes namespace h keep
// keep changes, or skips the test over a backend that keeps no history.
func historyStore(t *testing.T, o Opener, actor string, keep int) *opstate.Store {
	t.Helper()
	opts := realTime()
	opts.Actor = actor
	s := open(t, o, opts)
	if err := s.SetHistory("h", keep); errors.Is(err, opstate.ErrUnsupported) {
		t.Skip("the backend keeps no history")
	} else if err != nil {
		t.Fatalf("SetHistory(h, %d) = %v", keep, err)
	}
	return s
}

// change is what the tests compare of a Change: all but Seq and Time,
// with expiries as whether there is one.
type change struct {
	key           string
	op            opstate.Op
	existed       bool
	before, after string
	expires       bool
	actor         string
}

func (c change) String() string {
	return fmt.Sprintf("{%s %v existed=%v %q→%q expires=%v by %q}", c.key, c.op, c.existed, c.before, c.after, c.expires, c.actor)
}

// historyOf returns the history of h (of key unless ""), oldest first, as
// changes, checking that Seq grows and Time is about now.
func historyOf(t *testing.T, s *opstate.Store, key string) ([]change, []opstate.Change) {
	t.Helper()
	cs, err := s.History(context.Background(), "h", key, 0)
	if err != nil {
		t.Fatalf("History(h, %q) = %v", key, err)
	}
	out := make([]change, len(cs))
	for i, c := range cs {
		out[len(cs)-1-i] = change{key: c.Key, op: c.Op, existed: c.Existed, before: c.Before, after: c.After, expires: !c.Expires.IsZero(), actor: c.Actor}
		if c.Namespace != "h" {
			t.Errorf("History(h, %q) returned a change of %q", key, c.Namespace)
		}
		if i > 0 && c.Seq >= cs[i-1].Seq {
			t.Errorf("History(h, %q): Seq %d after %d, newest first", key, c.Seq, cs[i-1].Seq)
		}
		if d := time.Since(c.Time); d < -time.Minute || d > time.Minute {
			t.Errorf("History(h, %q): change %d at %v, %v from now", key, c.Seq, c.Time, d)
		}
	}
	return out, cs
}

// wantHistory checks that the history of h is want, oldest first.
func wantHistory(t *testing.T, s *opstate.Store, want ...change) {
	t.Helper()
	got, _ := historyOf(t, s, "")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("history of h:\n got %v\nwant %v", got, want)
	}
}

func testHistoryWrites(t *testing.T, c Config) {
	o := c.New(t)
	s := historyStore(t, o, "alice", 100)
	opts := realTime()
	opts.Actor = "bob"
	other := open(t, o, opts)
	carol := s.As("carol")
	set := func(key, before, after string, expires bool, actor string) change {
		return change{key: key, op: opstate.OpSet, existed: before != "", before: before, after: after, expires: expires, actor: actor}
	}
	del := func(key, before string, actor string) change {
		return change{key: key, op: opstate.OpDelete, existed: true, before: before, actor: actor}
	}
	ok := func(done bool, err error) {
		t.Helper()
		if err != nil || !done {
			t.Fatalf("conditional write = %v, %v; want true, nil", done, err)
		}
	}
	refused := func(done bool, err error) {
		t.Helper()
		if err != nil || done {
			t.Fatalf("conditional write = %v, %v; want false, nil", done, err)
		}
	}
	var want []change
	step := func(name string, f func(), changes ...change) {
		t.Helper()
		f()
		want = append(want, changes...)
		wantHistory(t, s, want...)
		if t.Failed() {
			t.Fatalf("after %s", name)
		}
	}
	step("Set", func() { mustSet(t, s, "h", "k", "1") }, set("k", "", "1", false, "alice"))
	step("SetWithTTL", func() { mustSetTTL(t, s, "h", "k", "2", time.Hour) }, set("k", "1", "2", true, "alice"))
	step("SetIfAbsent refused", func() { refused(s.SetIfAbsent("h", "k", "x")) })
	step("SetIfAbsent", func() { ok(s.SetIfAbsent("h", "n", "x")) }, set("n", "", "x", false, "alice"))
	step("SetIfAbsentWithTTL", func() { ok(s.SetIfAbsentWithTTL("h", "m", "y", time.Hour)) }, set("m", "", "y", true, "alice"))
	step("CompareAndSwap refused", func() { refused(s.CompareAndSwap("h", "k", "wrong", "3")) })
	step("CompareAndSwap", func() { ok(s.CompareAndSwap("h", "k", "2", "3")) }, set("k", "2", "3", false, "alice"))
	step("CompareAndSwapWithTTL", func() { ok(carol.CompareAndSwapWithTTL("h", "k", "3", "4", time.Hour)) }, set("k", "3", "4", true, "carol"))
	step("CompareAndDelete refused", func() { refused(s.CompareAndDelete("h", "k", "wrong")) })
	step("CompareAndDelete", func() { ok(carol.CompareAndDelete("h", "k", "4")) }, del("k", "4", "carol"))
	step("Delete of a missing key", func() {
		if err := s.Delete("h", "missing"); err != nil {
			t.Fatal(err)
		}
	})
	step("Delete", func() {
		if err := s.Delete("h", "n"); err != nil {
			t.Fatal(err)
		}
	}, del("n", "x", "alice"))
	step("another Store's Set", func() { mustSet(t, other, "h", "o", "1") }, set("o", "", "1", false, "bob"))
	step("a Writer's Set", func() {
		if err := carol.Set("h", "o", "2"); err != nil {
			t.Fatal(err)
		}
	}, set("o", "1", "2", false, "carol"))
	step("DeleteNamespace", func() {
		if err := other.DeleteNamespace("h"); err != nil {
			t.Fatal(err)
		}
	}, change{key: "m", op: opstate.OpDelete, existed: true, before: "y", expires: false, actor: "bob"}, del("o", "2", "bob"))
	// A namespace without history records nothing, and has none to read.
	mustSet(t, s, "other", "k", "v")
	if _, err := s.History(context.Background(), "other", "", 0); !errors.Is(err, opstate.ErrNoHistory) {
		t.Errorf("History(other) = %v; want ErrNoHistory", err)
	}
	if err := s.Revert(context.Background(), "other", "k", 1); !errors.Is(err, opstate.ErrNoHistory) {
		t.Errorf("Revert(other, k, 1) = %v; want ErrNoHistory", err)
	}
	if got, _ := historyOf(t, s, "k"); len(got) != 5 {
		t.Errorf("History(h, k) has %d changes; want k's 5: %v", len(got), got)
	}
	keeps, err := other.HistoryKeeps()
	if err != nil || len(keeps) != 1 || keeps["h"] != 100 {
		t.Errorf("HistoryKeeps() = %v, %v; want h: 100", keeps, err)
	}
}

// testHistoryExpire: a key that expires and is swept is recorded as
// expired.
func testHistoryExpire(t *testing.T, c Config) {
	s := historyStore(t, c.New(t), "alice", 100)
	mustSetTTL(t, s, "h", "e", "v", shortTTL)
	listedWithout(t, s, "h", "e")
	err := poll(settleBound, func() error {
		if n, err := s.DeleteExpired(context.Background()); err != nil || n == 0 {
			return fmt.Errorf("DeleteExpired = %d, %v", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := historyOf(t, s, "e")
	if len(got) != 2 || got[1].op != opstate.OpExpire || got[1].before != "v" || !got[1].existed {
		t.Errorf("history of h/e = %v; want its set and its expiry", got)
	}
}

// testHistoryOff: SetHistory 0 turns the history off: nothing is
// recorded, nothing served, and what was is gone once the sweeper ran.
func testHistoryOff(t *testing.T, c Config) {
	s := historyStore(t, c.New(t), "alice", 100)
	mustSet(t, s, "h", "k", "kept")
	if err := s.SetHistory("h", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.History(context.Background(), "h", "", 0); !errors.Is(err, opstate.ErrNoHistory) {
		t.Errorf("History(h) after SetHistory(h, 0) = %v; want ErrNoHistory", err)
	}
	if keeps, err := s.HistoryKeeps(); err != nil || len(keeps) != 0 {
		t.Errorf("HistoryKeeps() = %v, %v; want none", keeps, err)
	}
	mustSet(t, s, "h", "k", "unrecorded")
	if _, err := s.DeleteExpired(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.SetHistory("h", 100); err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "h", "k", "recorded")
	wantHistory(t, s, change{key: "k", op: opstate.OpSet, existed: true, before: "unrecorded", after: "recorded", actor: "alice"})
	if err := s.SetHistory("h", -1); !errors.Is(err, opstate.ErrInvalidOption) {
		t.Errorf("SetHistory(h, -1) = %v; want ErrInvalidOption", err)
	}
}

// testHistoryKeep: the sweeper leaves a namespace its last keep changes.
func testHistoryKeep(t *testing.T, c Config) {
	s := historyStore(t, c.New(t), "alice", 3)
	for i := range 10 {
		mustSet(t, s, "h", "k", fmt.Sprint(i))
	}
	if _, err := s.DeleteExpired(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantHistory(t, s,
		change{key: "k", op: opstate.OpSet, existed: true, before: "6", after: "7", actor: "alice"},
		change{key: "k", op: opstate.OpSet, existed: true, before: "7", after: "8", actor: "alice"},
		change{key: "k", op: opstate.OpSet, existed: true, before: "8", after: "9", actor: "alice"})
}

// testHistoryPaging: History's limit, HistoryBefore's before, and the
// history of one key among others.
func testHistoryPaging(t *testing.T, c Config) {
	s := historyStore(t, c.New(t), "alice", 100)
	for i := range 5 {
		mustSet(t, s, "h", "k", fmt.Sprint(i))
		mustSet(t, s, "h", "j", fmt.Sprint(i))
	}
	ctx := context.Background()
	page, err := s.History(ctx, "h", "k", 2)
	if err != nil || len(page) != 2 || page[0].After != "4" || page[1].After != "3" {
		t.Fatalf("History(h, k, 2) = %+v, %v; want k's 4 and 3", page, err)
	}
	page, err = s.HistoryBefore(ctx, "h", "k", page[1].Seq, 10)
	if err != nil || len(page) != 3 || page[0].After != "2" || page[2].After != "0" || page[0].Key != "k" {
		t.Fatalf("HistoryBefore(h, k, 3's seq, 10) = %+v, %v; want k's 2, 1, 0", page, err)
	}
	all, err := s.History(ctx, "h", "", 3)
	if err != nil || len(all) != 3 || all[0].Key != "j" || all[1].Key != "k" || all[2].Key != "j" {
		t.Fatalf("History(h, \"\", 3) = %+v, %v; want j, k, j", all, err)
	}
}

// testRevert: Revert to a value and to a deletion, recorded as the
// writer's; refused with ErrConflict when the key changed since its last
// recorded change was read, with an error for an expired value, with
// ErrNoChange for a seq of another key or none.
func testRevert(t *testing.T, c Config) {
	o := c.New(t)
	s := historyStore(t, o, "alice", 100)
	ctx := context.Background()
	seqOf := func(key, after string) int64 {
		t.Helper()
		_, cs := historyOf(t, s, key)
		for _, c := range cs {
			if c.Op == opstate.OpSet && c.After == after {
				return c.Seq
			}
		}
		t.Fatalf("no change of h/%s set %q", key, after)
		return 0
	}
	mustSet(t, s, "h", "k", "1")
	mustSet(t, s, "h", "k", "2")
	if err := s.As("dave").Revert(ctx, "h", "k", seqOf("k", "1")); err != nil {
		t.Fatalf("Revert to 1 = %v", err)
	}
	wantLookup(t, s, "h", "k", "1", true)
	got, _ := historyOf(t, s, "k")
	if last := got[len(got)-1]; last.after != "1" || last.before != "2" || last.actor != "dave" {
		t.Errorf("the revert was recorded as %v; want 2→1 by dave", last)
	}
	// The latest change itself: nothing to do.
	if err := s.Revert(ctx, "h", "k", seqOf("k", "1")); err != nil {
		t.Errorf("Revert to the latest change = %v", err)
	}
	// To a deletion, and back.
	if err := s.Delete("h", "k"); err != nil {
		t.Fatal(err)
	}
	_, cs := historyOf(t, s, "k")
	deleted := cs[0].Seq
	mustSet(t, s, "h", "k", "3")
	if err := s.Revert(ctx, "h", "k", deleted); err != nil {
		t.Fatalf("Revert to the delete = %v", err)
	}
	wantLookup(t, s, "h", "k", "", false)
	if err := s.Revert(ctx, "h", "k", seqOf("k", "3")); err != nil {
		t.Fatalf("Revert of a deleted key to 3 = %v", err)
	}
	wantLookup(t, s, "h", "k", "3", true)
	// A change in between that the Store's history read missed cannot be
	// made: a write of a namespace's key is recorded as it commits. So the
	// conflict is made the one way it arises, a write between the read of
	// the latest change and the conditional write: here, a change made
	// with history off.
	if err := s.SetHistory("h", 0); err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "h", "k", "unrecorded")
	if err := s.SetHistory("h", 100); err != nil {
		t.Fatal(err)
	}
	if err := s.Revert(ctx, "h", "k", seqOf("k", "2")); !errors.Is(err, opstate.ErrConflict) || !strings.Contains(err.Error(), `"unrecorded"`) {
		t.Errorf("Revert over a change in between = %v; want ErrConflict naming what the key holds", err)
	}
	wantLookup(t, s, "h", "k", "unrecorded", true)
	// Unknown seqs, and one of another key.
	mustSet(t, s, "h", "j", "j1")
	for _, seq := range []int64{0, -1, seqOf("j", "j1"), 1 << 60} {
		if err := s.Revert(ctx, "h", "k", seq); !errors.Is(err, opstate.ErrNoChange) {
			t.Errorf("Revert(h, k, %d) = %v; want ErrNoChange", seq, err)
		}
	}
	// A value that has expired since cannot come back.
	mustSetTTL(t, s, "h", "t", "short", shortTTL)
	mustSet(t, s, "h", "t", "long")
	time.Sleep(shortTTL + 50*time.Millisecond)
	if err := s.Revert(ctx, "h", "t", seqOf("t", "short")); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("Revert to an expired value = %v; want an error saying it expired", err)
	}
	wantLookup(t, s, "h", "t", "long", true)
}
