package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// testTTL tests expiry: what the Store's clock decides, with a fake clock,
// and what the database decides, with real TTLs.
func testTTL(t *testing.T, c Config) {
	t.Run("Expiry", func(t *testing.T) { testExpiry(t, c) })
	t.Run("SetClearsExpiry", func(t *testing.T) { testSetClearsExpiry(t, c) })
	t.Run("DeleteExpired", func(t *testing.T) { testDeleteExpired(t, c) })
	t.Run("ConcurrentSweeps", func(t *testing.T) { testConcurrentSweeps(t, c) })
}

// testExpiry: a key set with a TTL is live until the Store's clock reaches
// its expiry, and missing from then on; a write with a TTL replaces the
// expiry of one before it.
func testExpiry(t *testing.T, c Config) {
	clk := newClock()
	s := open(t, c.New(t), fakeTime(clk))
	mustSetTTL(t, s, "ns", "hour", "v", time.Hour)
	mustSetTTL(t, s, "ns", "renewed", "v1", time.Minute)
	mustSetTTL(t, s, "ns", "renewed", "v2", 2*time.Hour)
	mustSetTTL(t, s, "ns", "shortened", "v1", 2*time.Hour)
	mustSetTTL(t, s, "ns", "shortened", "v2", time.Minute)
	wantLookup(t, s, "ns", "hour", "v", true)
	wantLookup(t, s, "ns", "shortened", "v2", true)
	clk.Advance(time.Minute)
	wantLookup(t, s, "ns", "shortened", "", false)
	wantLookup(t, s, "ns", "renewed", "v2", true)
	clk.Advance(time.Hour - time.Minute - time.Millisecond)
	wantLookup(t, s, "ns", "hour", "v", true)
	clk.Advance(time.Millisecond)
	wantLookup(t, s, "ns", "hour", "", false)
	wantLookup(t, s, "ns", "renewed", "v2", true)
	clk.Advance(time.Hour)
	wantLookup(t, s, "ns", "renewed", "", false)
}

// testSetClearsExpiry: Set, unlike SetWithTTL, leaves a key that never
// expires, by the Store's clock and by the database's.
func testSetClearsExpiry(t *testing.T, c Config) {
	clk := newClock()
	o := c.New(t)
	s := open(t, o, fakeTime(clk))
	mustSetTTL(t, s, "ns", "k", "v1", time.Hour)
	mustSet(t, s, "ns", "k", "v2")
	clk.Advance(2 * time.Hour)
	wantLookup(t, s, "ns", "k", "v2", true)

	r := open(t, o, realTime())
	mustSetTTL(t, r, "db", "k", "v1", shortTTL)
	mustSet(t, r, "db", "k", "v2")
	mustSetTTL(t, r, "db", "marker", "m", shortTTL)
	listedWithout(t, r, "db", "marker")
	wantList(t, r, "db", map[string]string{"k": "v2"})
	if n, err := r.DeleteExpired(context.Background()); n != 1 || err != nil {
		t.Errorf("DeleteExpired = %d, %v; want 1 (the marker), nil", n, err)
	}
	wantLookup(t, open(t, o, realTime()), "db", "k", "v2", true)
}

// testDeleteExpired: once their TTL has passed, expired keys are missing
// from Get, List and Namespaces, and DeleteExpired deletes exactly them,
// over several batches, and counts them; a second run finds none.
func testDeleteExpired(t *testing.T, c Config) {
	o := c.New(t)
	s := open(t, o, realTime())
	const gone = 70 // several of the sweeper's batches
	var goneKeys []string
	start := time.Now()
	for i := range gone {
		k := fmt.Sprintf("k%02d", i)
		goneKeys = append(goneKeys, k)
		mustSetTTL(t, s, "gone", k, "v", shortTTL)
	}
	mustSetTTL(t, s, "mixed", "short", "v", shortTTL)
	mustSetTTL(t, s, "mixed", "long", "v", time.Hour)
	mustSet(t, s, "mixed", "plain", "v")
	if time.Since(start) < shortTTL/2 {
		// Still live, unless writing them took long: they are listed.
		wantNamespaces(t, s, []opstate.Namespace{{Name: "gone", Keys: gone}, {Name: "mixed", Keys: 3}})
	}

	listedWithout(t, s, "gone", goneKeys...)
	listedWithout(t, s, "mixed", "short")
	wantList(t, s, "gone", map[string]string{})
	wantList(t, s, "mixed", map[string]string{"long": "v", "plain": "v"})
	wantNamespaces(t, s, []opstate.Namespace{{Name: "mixed", Keys: 2}})
	wantLookup(t, s, "gone", "k00", "", false)
	wantLookup(t, s, "mixed", "short", "", false)

	n, err := s.DeleteExpired(context.Background())
	if n != gone+1 || err != nil {
		t.Errorf("DeleteExpired = %d, %v; want %d, nil", n, err, gone+1)
	}
	if n, err := s.DeleteExpired(context.Background()); n != 0 || err != nil {
		t.Errorf("second DeleteExpired = %d, %v; want 0, nil", n, err)
	}
	fresh := open(t, o, realTime())
	wantLookup(t, fresh, "mixed", "long", "v", true)
	wantLookup(t, fresh, "mixed", "plain", "v", true)
	wantLookup(t, fresh, "mixed", "short", "", false)
	wantNamespaces(t, fresh, []opstate.Namespace{{Name: "mixed", Keys: 2}})
	if st := s.Stats(); st.Expired != uint64(gone+1) {
		t.Errorf("Stats().Expired = %d; want %d", st.Expired, gone+1)
	}
}

// testConcurrentSweeps: DeleteExpired of several Stores on one database at
// once delete every expired row once: their counts add up to the rows.
func testConcurrentSweeps(t *testing.T, c Config) {
	o := c.New(t)
	stores := []*opstate.Store{open(t, o, realTime()), open(t, o, realTime()), open(t, o, realTime())}
	const rows = 300
	var keys []string
	for i := range rows {
		keys = append(keys, fmt.Sprint("k", i))
		mustSetTTL(t, stores[i%len(stores)], "sweep", keys[i], "v", shortTTL)
	}
	listedWithout(t, stores[0], "sweep", keys...)
	counts := make([]int64, len(stores))
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			var err error
			if counts[i], err = s.DeleteExpired(context.Background()); err != nil {
				t.Errorf("Store %d: DeleteExpired = %v", i, err)
			}
		})
	}
	wg.Wait()
	var sum int64
	for _, n := range counts {
		sum += n
	}
	if sum != rows {
		t.Errorf("concurrent DeleteExpired counts %v add up to %d; want %d", counts, sum, rows)
	}
	if n, err := stores[0].DeleteExpired(context.Background()); n != 0 || err != nil {
		t.Errorf("DeleteExpired after them = %d, %v; want 0, nil", n, err)
	}
}
