package opstate_test

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/d8da9184/opstate"
)

// TestWatchSendsServedChanges checks that an event is sent only once this
// Store's reads serve the change it reports: a consumer that calls Get on
// receiving an OpSet gets that value or a newer one, never the one before.
// The values of each key only grow, so a Get below the event's value reads
// a change the event follows. Three more goroutines read the keys without
// pause, so that the cache's fills race with the drops that precede the
// events. The writer is this Store, another Store (each Set of one key),
// or plain SQL (each UPDATE of 60 keys, so that one check finds many).
func TestWatchSendsServedChanges(t *testing.T) {
	const keys = 60 // fewer than the keys of a namespace-wide change
	key := func(i int) string { return fmt.Sprint("k", i%keys) }
	value := func(i int) string { return fmt.Sprintf("%08d", i) }
	setEach := func(w *opstate.Store, writes int) error {
		for i := range writes {
			if err := w.Set("ns", key(i), value(i)); err != nil {
				return err
			}
		}
		return w.Set("ns", marker, "m")
	}
	tests := []struct {
		name  string
		write func(t *testing.T, path string, s *opstate.Store) error
	}{
		{"own", func(t *testing.T, path string, s *opstate.Store) error { return setEach(s, 500) }},
		{"store", func(t *testing.T, path string, s *opstate.Store) error {
			return setEach(mustOpen(t, path, opstate.Options{SyncInterval: -1}), 1500)
		}},
		{"sql", func(t *testing.T, path string, s *opstate.Store) error {
			db := sqlDB(t, path)
			for i := 1; i <= 150; i++ {
				if _, err := db.Exec(`UPDATE operational_state SET value = ? WHERE namespace = 'ns'`, value(i)); err != nil {
					return err
				}
			}
			_, err := db.Exec(`INSERT INTO operational_state VALUES ('ns', ?, 'm', '2026-03-07T10:00:00.000Z', NULL)`, marker)
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := dbPath(t)
			s := mustOpen(t, path, opstate.Options{SyncInterval: watchSync})
			for i := range keys {
				mustSet(t, s, "ns", key(i), value(0))
			}
			ch := watch(t, s, "ns")
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for r := range 3 {
				wg.Go(func() {
					for i := r; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						if _, err := s.Get("ns", key(i)); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Go(func() {
				if err := tc.write(t, path, s); err != nil {
					t.Error(err)
				}
			})
			var events, stale int
			for {
				ev := recv(t, ch, eventBound)
				if ev.Key == marker {
					break
				}
				if ev.Op != opstate.OpSet {
					t.Errorf("event %s; only Sets were made", eventsString([]opstate.Event{ev}))
					continue
				}
				events++
				got, err := s.Get("ns", ev.Key)
				if err != nil {
					t.Fatal(err)
				}
				if got < ev.Value {
					if stale++; stale <= 3 {
						t.Errorf("Get(ns, %q) on receiving its OpSet of %s = %s, the value before", ev.Key, ev.Value, got)
					}
				}
			}
			close(stop)
			wg.Wait()
			if stale > 0 {
				t.Errorf("%d of %d events were received before Get served them", stale, events)
			}
			t.Logf("%d events", events)
		})
	}
}

// historySQL makes the file record every value its rows take, in commit
// order, by triggers of the test's own: whoever commits, the table
// history says in which order the changes to each key took effect
// (value NULL for a delete).
var historySQL = []string{
	`CREATE TABLE history (seq INTEGER PRIMARY KEY, namespace TEXT, key TEXT, value TEXT)`,
	`CREATE TRIGGER history_insert AFTER INSERT ON operational_state BEGIN
		INSERT INTO history (namespace, key, value) VALUES (NEW.namespace, NEW.key, NEW.value); END`,
	`CREATE TRIGGER history_update AFTER UPDATE ON operational_state BEGIN
		INSERT INTO history (namespace, key, value) VALUES (NEW.namespace, NEW.key, NEW.value); END`,
	`CREATE TRIGGER history_delete AFTER DELETE ON operational_state BEGIN
		INSERT INTO history (namespace, key, value) VALUES (OLD.namespace, OLD.key, NULL); END`,
}

// history returns, for each key of ns, the states it took in commit order:
// "=value", or "-" for a delete.
func history(t *testing.T, db *sql.DB, ns string) map[string][]string {
	t.Helper()
	rows, err := db.Query(`SELECT key, value FROM history WHERE namespace = ? ORDER BY seq`, ns)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	h := map[string][]string{}
	for rows.Next() {
		var k string
		var v sql.NullString
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		st := "-"
		if v.Valid {
			st = "=" + v.String
		}
		h[k] = append(h[k], st)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return h
}

// state is what an event says its key holds: "=value", or "-".
func state(ev opstate.Event) string {
	if ev.Op == opstate.OpSet {
		return "=" + ev.Value
	}
	return "-"
}

// TestWatchPerKeyOrder checks that a key's events arrive in commit order.
// Three goroutines of the watching Store and another Store on the file
// write values to the same four keys (each value written once, "w2-17",
// the sequence growing per writer), and delete them now and then, while
// triggers of the test record, in the file, the order in which the
// changes to each key committed. Per key, the states the events report
// must follow that order: a subsequence of the key's history (coalescing
// may skip states, and a state may be reported twice in a row, never
// after a later one). So per key and writer the sequence never goes back.
// Once the writes stop, each key's last event is what List holds.
func TestWatchPerKeyOrder(t *testing.T) {
	path := dbPath(t)
	other := mustOpen(t, path, opstate.Options{SyncInterval: watchSync})
	db := sqlDB(t, path)
	// Created before s opens the file: a schema change is a Reset.
	for _, q := range historySQL {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	s := mustOpen(t, path, opstate.Options{SyncInterval: watchSync})
	ch := watch(t, s, "ns")
	const keys, writes = 4, 400
	var wg sync.WaitGroup
	for w, st := range []*opstate.Store{s, s, s, other} {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range writes {
				k := fmt.Sprint("k", rng.IntN(keys))
				var err error
				if rng.IntN(10) == 0 {
					err = st.Delete("ns", k)
				} else {
					err = st.Set("ns", k, fmt.Sprintf("w%d-%06d", w, i))
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		if err := other.Set("ns", marker, "m"); err != nil { // after every foreign write
			t.Error(err)
		}
		close(done)
	}()
	got := map[string][]opstate.Event{}
	for {
		ev := recv(t, ch, eventBound)
		if ev.Key == marker {
			break
		}
		if ev.Op == opstate.OpReset {
			t.Errorf("OpReset, with four keys written and a consumer that keeps up")
			continue
		}
		got[ev.Key] = append(got[ev.Key], ev)
	}
	<-done
	hist := history(t, db, "ns")
	list, err := s.List("ns")
	if err != nil {
		t.Fatal(err)
	}
	for k, evs := range got {
		h, i := hist[k], 0
		for n, ev := range evs {
			st := state(ev)
			for i < len(h) && h[i] != st {
				i++
			}
			if i == len(h) {
				t.Errorf("%s: event %d, %s, is out of commit order: events %s, history %v", k, n, st, eventsString(evs), h)
				break
			}
		}
		last := evs[len(evs)-1]
		if v, ok := list[k]; v != last.Value || ok != (last.Op == opstate.OpSet) {
			t.Errorf("%s: last event %s; List holds %q, %v", k, eventsString([]opstate.Event{last}), v, ok)
		}
	}
	for k := range list {
		if k != marker && len(got[k]) == 0 {
			t.Errorf("%s: no event; List holds %q", k, list[k])
		}
	}
}
