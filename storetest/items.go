package storetest

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// testItems tests ListItems: List's keys and values with each key's
// expiry.
func testItems(t *testing.T, c Config) {
	t.Run("Expiries", func(t *testing.T) { testItemsExpiries(t, c) })
	t.Run("Expired", func(t *testing.T) { testItemsExpired(t, c) })
	t.Run("Checks", func(t *testing.T) { testItemsChecks(t, c) })
}

// testItemsExpiries: a key set with a TTL is listed with its expiry, an
// instant of the Store's clock in UTC, however far that clock is from the
// database's; a key set without one, or set again without one, never
// expires; keys and values are List's, hostile text included, read
// through the writing Store and a new one.
func testItemsExpiries(t *testing.T, c Config) {
	clk := newClock()
	// A Store's clock a day ahead of the database's: an expiry reported
	// in the database's clock would be a day off.
	clk.Advance(24 * time.Hour)
	o := c.New(t)
	s := open(t, o, fakeTime(clk))
	set := clk.Now()
	mustSetTTL(t, s, "ns", "ttl", "v1", time.Hour)
	mustSet(t, s, "ns", "forever", "v2")
	mustSetTTL(t, s, "ns", "cleared", "v3", time.Hour)
	mustSet(t, s, "ns", "cleared", "v4")
	mustSet(t, s, "other", "k", "v5")
	want := map[string]string{"ttl": "v1", "forever": "v2", "cleared": "v4"}
	for i, h := range hostile[:len(hostile)-1] {
		k := fmt.Sprint("hostile", i)
		mustSet(t, s, "ns", k, h)
		want[k] = h
	}
	wantExpires := map[string]time.Time{"ttl": set.Add(time.Hour)}

	check := func(r *opstate.Store) {
		t.Helper()
		got, err := r.ListItems("ns")
		if err != nil || got == nil {
			t.Fatalf("ListItems(ns) = %v, %v; want items, nil", got, err)
		}
		values := map[string]string{}
		for k, it := range got {
			values[k] = it.Value
			w := wantExpires[k]
			switch {
			case w.IsZero() && !it.Expires.IsZero():
				t.Errorf("ListItems(ns)[%q].Expires = %v; want the zero time (never)", k, it.Expires)
			case !w.IsZero() && (it.Expires.Before(w.Add(-settleBound)) || it.Expires.After(w.Add(settleBound))):
				// A backend that judges expiry by its own clock reports
				// it moved by the read's latency.
				t.Errorf("ListItems(ns)[%q].Expires = %v; want %v, give or take %v", k, it.Expires, w, settleBound)
			case !w.IsZero() && it.Expires.Location() != time.UTC:
				t.Errorf("ListItems(ns)[%q].Expires = %v; want it in UTC", k, it.Expires)
			}
		}
		if !maps.Equal(values, want) {
			t.Errorf("ListItems(ns) values = %s; want %s", short(values), short(want))
		}
		wantList(t, r, "ns", want)
	}
	check(s)
	check(open(t, o, fakeTime(clk)))
}

// testItemsExpired: a key whose TTL has passed, by the Store's clock and
// the database's, is left out, as List leaves it out, and the keys
// beside it stay.
func testItemsExpired(t *testing.T, c Config) {
	s := open(t, c.New(t), realTime())
	mustSetTTL(t, s, "ns", "short", "v1", shortTTL)
	mustSetTTL(t, s, "ns", "long", "v2", time.Hour)
	mustSet(t, s, "ns", "forever", "v3")
	if got, err := s.ListItems("ns"); err != nil || len(got) != 3 {
		t.Fatalf("ListItems(ns) before expiry = %v, %v; want 3 items, nil", got, err)
	}
	listedWithout(t, s, "ns", "short")
	err := poll(settleBound, func() error {
		got, err := s.ListItems("ns")
		if err != nil {
			return err
		}
		if _, ok := got["short"]; ok {
			return fmt.Errorf("ListItems(ns) still lists short: %v", got)
		}
		if len(got) != 2 || got["long"].Value != "v2" || got["long"].Expires.IsZero() ||
			got["forever"] != (opstate.Item{Value: "v3"}) {
			return fmt.Errorf("ListItems(ns) = %v; want long (v2, with an expiry) and forever (v3, none)", got)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if got, err := s.ListItems("empty"); err != nil || got == nil || len(got) != 0 {
		t.Errorf("ListItems(empty) = %v, %v; want an empty map, nil", got, err)
	}
}

// testItemsChecks: ListItems refuses what List refuses, with the same
// errors and a non-nil map.
func testItemsChecks(t *testing.T, c Config) {
	s, err := c.New(t)(realTime())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.ListItems(""); got == nil || err != opstate.ErrEmptyName {
		t.Errorf("ListItems(\"\") = %v, %v; want an empty map, ErrEmptyName", got, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, lerr := s.List("ns")
	if got, err := s.ListItems("ns"); got == nil || err != lerr || err != opstate.ErrClosed {
		t.Errorf("ListItems after Close = %v, %v; want an empty map, ErrClosed (as List: %v)", got, err, lerr)
	}
}
