package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// testConditional tests the conditional writes: each over every state a
// key can be in, and racing.
func testConditional(t *testing.T, c Config) {
	t.Run("States", func(t *testing.T) { testConditionalStates(t, c) })
	t.Run("Race", func(t *testing.T) { testConditionalRace(t, c) })
}

// keyState is a state a key is put in before a conditional write.
type keyState struct {
	name    string
	value   string // what it holds, if anything was set
	set     bool   // it was set
	deleted bool   // and then deleted
	ttl     bool   // with an hour's TTL (live)
	expired bool   // with shortTTL, passed by the test (absent)
}

func (k keyState) live() bool { return k.set && !k.deleted && !k.expired }

var keyStates = []keyState{
	{name: "missing"},
	{name: "deleted", value: "old", set: true, deleted: true},
	{name: "live-old", value: "old", set: true},
	{name: "live-other", value: "other", set: true},
	{name: "live-empty", value: "", set: true},
	{name: "live-old-ttl", value: "old", set: true, ttl: true},
	{name: "expired-old", value: "old", set: true, expired: true},
	{name: "expired-other", value: "other", set: true, expired: true},
}

// condOp is a conditional write, with what it should do to a key in a
// given state: the reference the table checks against.
type condOp struct {
	name string
	do   func(s *opstate.Store, ns, key string) (bool, error)
	// want reports whether the write changes a key in state k, and, if
	// so, whether the key is then live, with what value, with a TTL.
	want func(k keyState) (ok, live bool, value string, ttl bool)
}

// condOps are the conditional writes, each to "new" (or from "old", or
// from "").
var condOps = []condOp{
	{"SetIfAbsent", func(s *opstate.Store, ns, key string) (bool, error) { return s.SetIfAbsent(ns, key, "new") },
		func(k keyState) (bool, bool, string, bool) { return !k.live(), true, "new", false }},
	{"SetIfAbsentWithTTL", func(s *opstate.Store, ns, key string) (bool, error) {
		return s.SetIfAbsentWithTTL(ns, key, "new", time.Hour)
	}, func(k keyState) (bool, bool, string, bool) { return !k.live(), true, "new", true }},
	{"CompareAndSwap", func(s *opstate.Store, ns, key string) (bool, error) { return s.CompareAndSwap(ns, key, "old", "new") },
		func(k keyState) (bool, bool, string, bool) { return k.live() && k.value == "old", true, "new", false }},
	{"CompareAndSwap/from-empty", func(s *opstate.Store, ns, key string) (bool, error) { return s.CompareAndSwap(ns, key, "", "new") },
		func(k keyState) (bool, bool, string, bool) { return k.live() && k.value == "", true, "new", false }},
	{"CompareAndSwapWithTTL", func(s *opstate.Store, ns, key string) (bool, error) {
		return s.CompareAndSwapWithTTL(ns, key, "old", "new", time.Hour)
	}, func(k keyState) (bool, bool, string, bool) { return k.live() && k.value == "old", true, "new", true }},
	{"CompareAndSwap/to-same", func(s *opstate.Store, ns, key string) (bool, error) { return s.CompareAndSwap(ns, key, "old", "old") },
		func(k keyState) (bool, bool, string, bool) { return k.live() && k.value == "old", true, "old", false }},
	{"CompareAndDelete", func(s *opstate.Store, ns, key string) (bool, error) { return s.CompareAndDelete(ns, key, "old") },
		func(k keyState) (bool, bool, string, bool) { return k.live() && k.value == "old", false, "", false }},
	{"CompareAndDelete/empty", func(s *opstate.Store, ns, key string) (bool, error) { return s.CompareAndDelete(ns, key, "") },
		func(k keyState) (bool, bool, string, bool) { return k.live() && k.value == "", false, "", false }},
}

// testConditionalStates runs every conditional write on a key in every
// state, and checks its answer and what the key holds afterwards: through
// the Store's cache, through List (the database's judgement of expiry), in
// a Store that has cached nothing, and, once an hour has passed on the
// Store's clock, whether the write left an expiry. A write that changes
// nothing leaves the key as it was.
func testConditionalStates(t *testing.T, c Config) {
	clk := newClock()
	o := c.New(t)
	s := open(t, o, fakeTime(clk))
	const ns = "cond"
	key := func(op condOp, k keyState) string { return op.name + "@" + k.name }

	var expiring []string
	for _, op := range condOps {
		for _, k := range keyStates {
			switch {
			case !k.set:
			case k.ttl:
				mustSetTTL(t, s, ns, key(op, k), k.value, time.Hour)
			case k.expired:
				mustSetTTL(t, s, ns, key(op, k), k.value, shortTTL)
				expiring = append(expiring, key(op, k))
			default:
				mustSet(t, s, ns, key(op, k), k.value)
			}
			if k.deleted {
				if err := s.Delete(ns, key(op, k)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	clk.Advance(shortTTL + time.Millisecond) // expired for the Store
	listedWithout(t, s, ns, expiring...)     // and for the database

	// final is what each key must hold after its write: live keys only.
	final := map[string]string{}
	hasTTL := map[string]bool{}
	for _, op := range condOps {
		for _, k := range keyStates {
			name := key(op, k)
			wantOK, live, value, ttl := op.want(k)
			if !wantOK {
				live, value, ttl = k.live(), k.value, k.ttl
			}
			ok, err := op.do(s, ns, name)
			if ok != wantOK || err != nil {
				t.Errorf("%s on a key %s = %v, %v; want %v, nil", op.name, k.name, ok, err, wantOK)
			}
			if live {
				final[name], hasTTL[name] = value, ttl
			}
		}
	}

	check := func(what string, r *opstate.Store) {
		t.Helper()
		for _, op := range condOps {
			for _, k := range keyStates {
				name := key(op, k)
				want, ok := final[name]
				got, gotOK, err := r.Lookup(ns, name)
				if got != want || gotOK != ok || err != nil {
					t.Errorf("%s: after %s on a key %s, Lookup = %q, %v, %v; want %q, %v, nil", what, op.name, k.name, got, gotOK, err, want, ok)
				}
			}
		}
	}
	check("this Store", s)
	wantList(t, s, ns, final)
	check("a new Store", open(t, o, fakeTime(clk)))

	clk.Advance(2 * time.Hour)
	for name, ttl := range hasTTL {
		if ttl {
			delete(final, name)
		}
	}
	check("two hours later", s)
}

// raceRounds is how many fresh keys testConditionalRace races for.
const raceRounds = 50

// testConditionalRace: racing SetIfAbsents of one fresh key, from
// goroutines spread over two Stores on one database, store exactly once,
// and racing CompareAndSwaps from the value stored swap exactly once;
// each racer's Store then serves the winner's value at once (a loser's
// answer refreshes its Store's cached entry).
func testConditionalRace(t *testing.T, c Config) {
	o := c.New(t)
	stores := []*opstate.Store{open(t, o, realTime()), open(t, o, realTime())}
	for round := range raceRounds {
		key := fmt.Sprintf("lease-%d", round)
		for _, s := range stores { // cache "absent" in both
			wantLookup(t, s, "race", key, "", false)
		}
		won := race(t, fmt.Sprintf("round %d: SetIfAbsent", round), stores, func(s *opstate.Store, name string) (bool, error) {
			return s.SetIfAbsent("race", key, name)
		})
		swapped := race(t, fmt.Sprintf("round %d: CompareAndSwap", round), stores, func(s *opstate.Store, name string) (bool, error) {
			return s.CompareAndSwap("race", key, won, name+"-swap")
		})
		for i, s := range stores {
			got, ok, err := s.Lookup("race", key)
			if got != swapped+"-swap" || !ok || err != nil {
				t.Errorf("round %d: Store %d: Lookup = %q, %v, %v; want the winner's %q, true, nil", round, i, got, ok, err, swapped+"-swap")
			}
		}
	}
	if m, err := stores[1].List("race"); len(m) != raceRounds || err != nil {
		t.Errorf("List(race) holds %d keys, %v; want %d, nil", len(m), err, raceRounds)
	}
}

// race releases racers, goroutines spread over stores, at once to call
// write, each with a name of its own, and returns the name of the one
// winner: the one whose write reported a change. More or fewer winners
// fail the test; what names the race in messages.
func race(t *testing.T, what string, stores []*opstate.Store, write func(s *opstate.Store, name string) (bool, error)) string {
	t.Helper()
	const racers = 8
	start := make(chan struct{})
	var wg sync.WaitGroup
	won := make([]bool, racers)
	errs := make([]error, racers)
	for i := range racers {
		wg.Go(func() {
			<-start
			won[i], errs[i] = write(stores[i%len(stores)], fmt.Sprint("racer-", i))
		})
	}
	close(start)
	wg.Wait()
	var winners []string
	for i := range racers {
		if errs[i] != nil {
			t.Fatalf("%s: racer %d: %v", what, i, errs[i])
		}
		if won[i] {
			winners = append(winners, fmt.Sprint("racer-", i))
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%s: winners %q; want exactly one", what, winners)
	}
	return winners[0]
}
