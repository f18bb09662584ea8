package opstate_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// TestLeaseClockSkew pins down what a lease on SQLite promises when the
// holders' clocks disagree: expiry is judged by each caller's
// Options.Clock, so a Store whose clock runs skew ahead of the holder's
// takes the lease skew before the holder's own clock says it ran out. The
// two holders then both believe they hold it for exactly skew; a holder
// that gives the lease up margin ≥ skew before its TTL (as the Example and
// the documentation advise) never overlaps. Two Stores on one file stand
// for two processes; real time moves in steps of 10ms.
func TestLeaseClockSkew(t *testing.T) {
	const ttl = 2 * time.Second
	const step = 10 * time.Millisecond
	for _, skew := range []time.Duration{-200 * time.Millisecond, 0, 200 * time.Millisecond, time.Second} {
		t.Run(fmt.Sprint(skew), func(t *testing.T) {
			t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
			var elapsed atomic.Int64 // real time since t0
			realNow := func() time.Time { return t0.Add(time.Duration(elapsed.Load())) }
			path := dbPath(t)
			a := mustOpen(t, path, opstate.Options{Clock: realNow})
			b := mustOpen(t, path, opstate.Options{Clock: func() time.Time { return realNow().Add(skew) }})

			ok, err := a.SetIfAbsentWithTTL("leases", "poller", "a", ttl)
			if err != nil || !ok {
				t.Fatalf("a acquires at t0: %v, %v; want true", ok, err)
			}
			// a holds the lease, by its own clock, until t0+ttl.
			aUntil := t0.Add(ttl)

			var bFrom time.Time // real time b first acquires
			for e := time.Duration(0); e <= ttl+time.Second; e += step {
				elapsed.Store(int64(e))
				ok, err := b.SetIfAbsentWithTTL("leases", "poller", "b", ttl)
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					bFrom = realNow()
					break
				}
			}
			if bFrom.IsZero() {
				t.Fatalf("b never acquired the lease within %v of a's acquiring it", ttl+time.Second)
			}
			// b acquires when its own clock reaches a's expiry.
			if want := t0.Add(ttl - skew); !bFrom.Equal(want) {
				t.Errorf("b acquired at t0%+v; want t0%+v (when b's clock reads t0+%v)", bFrom.Sub(t0), want.Sub(t0), ttl)
			}
			overlap := max(aUntil.Sub(bFrom), 0)
			if want := max(skew, 0); overlap != want {
				t.Errorf("a and b both held the lease for %v; want %v (the clock skew)", overlap, want)
			}
			// a holder that gives the lease up a margin of the skew before
			// its TTL runs out never overlaps the next one.
			if margin := max(skew, 0); aUntil.Add(-margin).After(bFrom) {
				t.Errorf("with a margin of %v, a held until t0%+v, after b acquired at t0%+v", margin, aUntil.Add(-margin).Sub(t0), bFrom.Sub(t0))
			}
			// From then on SQLite holds b's lease: a can neither renew nor
			// release it, even while a's clock says a's lease still runs.
			if ok, err := a.CompareAndSwapWithTTL("leases", "poller", "a", "a", ttl); err != nil || ok {
				t.Errorf("a renews after b acquired: %v, %v; want false", ok, err)
			}
			if ok, err := a.CompareAndDelete("leases", "poller", "a"); err != nil || ok {
				t.Errorf("a releases after b acquired: %v, %v; want false", ok, err)
			}
			if v, err := b.Get("leases", "poller"); err != nil || v != "b" {
				t.Errorf("b.Get = %q, %v; want b's lease", v, err)
			}
		})
	}
}
