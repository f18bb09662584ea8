package persist_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/d8da9184/opstate/internal/persist"
)

// changes calls db.Changes, failing the test on error, with its keys
// sorted.
func changes(t *testing.T, db *persist.DB) persist.Changes {
	t.Helper()
	ch, err := db.Changes(t.Context())
	if err != nil {
		t.Fatalf("Changes() = %v", err)
	}
	slices.SortFunc(ch.Keys, func(a, b persist.Key) int {
		return cmpKey(a, b)
	})
	slices.Sort(ch.Namespaces)
	return ch
}

func cmpKey(a, b persist.Key) int {
	if a.Namespace != b.Namespace {
		if a.Namespace < b.Namespace {
			return -1
		}
		return 1
	}
	switch {
	case a.Key < b.Key:
		return -1
	case a.Key > b.Key:
		return 1
	}
	return 0
}

func keys(pairs ...string) []persist.Key {
	var ks []persist.Key
	for i := 0; i < len(pairs); i += 2 {
		ks = append(ks, persist.Key{Namespace: pairs[i], Key: pairs[i+1]})
	}
	return ks
}

// TestChangesOwnWritesUnreported checks that a DB's own writes of every
// kind, alone and batched, are never reported as changes.
func TestChangesOwnWritesUnreported(t *testing.T) {
	db := mustOpen(t, "")
	apply(t, db, t0, putW("ns", "a", "1", 0))
	apply(t, db, t0, putW("ns", "b", "1", 0), putW("ns", "a", "2", 0), deleteW("ns", "b"))
	apply(t, db, t0, persist.Write{Kind: persist.PutIfAbsent, Namespace: "ns", Key: "c", Value: "1"})
	apply(t, db, t0, persist.Write{Kind: persist.Swap, Namespace: "ns", Key: "c", Old: "1", Value: "2"})
	apply(t, db, t0, persist.Write{Kind: persist.DeleteIf, Namespace: "ns", Key: "c", Old: "2"})
	apply(t, db, t0, putW("ns", "e", "1", t0+1))
	sweep(t, db, t0+1, 10)
	apply(t, db, t0, deleteNamespaceW("ns"))
	if ch := changes(t, db); ch.Reset || ch.Foreign || len(ch.Keys) > 0 || len(ch.Namespaces) > 0 {
		t.Errorf("Changes() after own writes = %+v; want nothing", ch)
	}
}

// TestChangesForeign checks what is reported of writes by another DB on
// the file and by plain SQL on a connection of its own, mixed with the
// DB's own writes.
func TestChangesForeign(t *testing.T) {
	db := mustOpen(t, "")
	other := mustOpen(t, db.Path())
	raw := rawDB(t, db.Path())
	exec := func(q string) {
		t.Helper()
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	apply(t, db, t0, putW("ns", "a", "1", 0), putW("ns", "b", "1", 0), putW("ns", "c", "1", 0))
	if ch := changes(t, db); ch.Foreign || len(ch.Keys) > 0 {
		t.Fatalf("Changes() = %+v; want nothing", ch)
	}

	steps := []struct {
		name string
		do   func()
		want persist.Changes
	}{
		{"other DB put", func() { apply(t, other, t0, putW("ns", "a", "2", 0)) },
			persist.Changes{Foreign: true, Keys: keys("ns", "a")}},
		{"plain SQL update", func() { exec(`UPDATE operational_state SET value = 'x' WHERE key = 'b'`) },
			persist.Changes{Foreign: true, Keys: keys("ns", "b")}},
		{"plain SQL rename", func() { exec(`UPDATE operational_state SET key = 'z' WHERE key = 'c'`) },
			persist.Changes{Foreign: true, Keys: keys("ns", "c", "ns", "z")}},
		{"plain SQL delete", func() { exec(`DELETE FROM operational_state WHERE key = 'z'`) },
			persist.Changes{Foreign: true, Keys: keys("ns", "z")}},
		// A schema change may be a backup restored into the file: the
		// log cannot say what changed (rewind_test.go).
		{"another table created", func() { exec(`CREATE TABLE IF NOT EXISTS app (x)`) },
			persist.Changes{Foreign: true, Reset: true}},
		{"another table written", func() { exec(`INSERT INTO app VALUES (1)`) },
			persist.Changes{Foreign: true}},
		{"own and foreign writes of one key", func() {
			apply(t, db, t0, putW("ns", "a", "own", 0), putW("ns", "own-only", "1", 0))
			apply(t, other, t0, putW("ns", "a", "theirs", 0))
			apply(t, db, t0, putW("ns", "a", "own again", 0))
		}, persist.Changes{Foreign: true, Keys: keys("ns", "a")}},
		{"foreign then own", func() {
			apply(t, other, t0, putW("ns", "f", "theirs", 0))
			apply(t, db, t0, putW("ns", "f", "own", 0))
		}, persist.Changes{Foreign: true, Keys: keys("ns", "f")}},
		{"nothing", func() {}, persist.Changes{}},
		{"own only", func() { apply(t, db, t0, putW("ns", "g", "1", 0)) }, persist.Changes{}},
	}
	for _, s := range steps {
		s.do()
		got := changes(t, db)
		if got.Reset != s.want.Reset || got.Foreign != s.want.Foreign ||
			!slices.Equal(got.Keys, s.want.Keys) || !slices.Equal(got.Namespaces, s.want.Namespaces) {
			t.Errorf("%s: Changes() = %+v; want %+v", s.name, got, s.want)
		}
	}
}

// TestChangesNamespaceWide checks that a change of many keys of one
// namespace is reported as the namespace, and a change past the limit as a
// Reset.
func TestChangesNamespaceWide(t *testing.T) {
	db := mustOpen(t, "")
	other := mustOpen(t, db.Path())
	var ws []persist.Write
	for i := range persist.SpaceThreshold + 1 {
		ws = append(ws, putW("wide", fmt.Sprint(i), "v", 0))
	}
	ws = append(ws, putW("narrow", "k", "v", 0))
	apply(t, other, t0, ws...)
	ch := changes(t, db)
	if !slices.Equal(ch.Namespaces, []string{"wide"}) || !slices.Equal(ch.Keys, keys("narrow", "k")) || ch.Reset {
		t.Errorf("Changes() = %+v; want namespace wide and key narrow/k", ch)
	}
	apply(t, other, t0, deleteNamespaceW("wide"))
	if ch := changes(t, db); !slices.Equal(ch.Namespaces, []string{"wide"}) {
		t.Errorf("Changes() after DeleteNamespace by another DB = %+v; want namespace wide", ch)
	}

	ws = ws[:0]
	for i := range persist.ChangesLimit + 1 {
		ws = append(ws, putW("huge", fmt.Sprint(i), "v", 0))
	}
	apply(t, other, t0, ws...)
	if ch := changes(t, db); !ch.Reset {
		t.Errorf("Changes() after %d rows changed = %+v; want a Reset", len(ws), ch)
	}
	if ch := changes(t, db); ch.Reset || ch.Foreign {
		t.Errorf("Changes() after the Reset = %+v; want nothing", ch)
	}
}

// TestChangesPruned checks that a DB whose unread rows were pruned learns
// of it, and one that read them loses nothing to pruning.
func TestChangesPruned(t *testing.T) {
	db := mustOpen(t, "")
	other := mustOpen(t, db.Path())
	for i := range 10 {
		apply(t, other, t0, putW("ns", fmt.Sprint(i), "v", 0))
	}
	if n, err := other.PruneChanges(t.Context(), 2, 100); err != nil || n != 8 {
		t.Fatalf("PruneChanges(2, 100) = %d, %v; want 8", n, err)
	}
	if ch := changes(t, db); !ch.Reset {
		t.Errorf("Changes() after its rows were pruned = %+v; want a Reset", ch)
	}
	apply(t, other, t0, putW("ns", "after", "v", 0))
	if _, err := other.PruneChanges(t.Context(), 0, 100); err != nil {
		t.Fatal(err)
	}
	// The last row stays: the next row's seq follows it.
	apply(t, other, t0, putW("ns", "later", "v", 0))
	if ch := changes(t, db); ch.Reset || !slices.Equal(ch.Keys, keys("ns", "after", "ns", "later")) {
		t.Errorf("Changes() = %+v; want ns/after and ns/later", ch)
	}
}

// TestChangesModel interleaves random writes of this DB and of another
// one over a few keys, and checks after each step that Changes reports
// exactly the keys the other DB changed since the last call (a Delete of
// a missing key changes nothing).
func TestChangesModel(t *testing.T) {
	db := mustOpen(t, "")
	other := mustOpen(t, db.Path())
	rng := rand.New(rand.NewPCG(1, 2))
	keySet := []string{"a", "b", "c", "d"}
	exists := map[string]bool{}
	for step := range 300 {
		changed := map[string]bool{}
		for range rng.IntN(4) {
			mine := rng.IntN(2) == 0
			target := db
			if !mine {
				target = other
			}
			k := keySet[rng.IntN(len(keySet))]
			var w persist.Write
			switch rng.IntN(4) {
			case 0:
				w = deleteW("ns", k)
				if !exists[k] {
					w = putW("ns", k, "v", 0)
				}
			case 1:
				w = persist.Write{Kind: persist.PutIfAbsent, Namespace: "ns", Key: k, Value: "v"}
			default:
				w = putW("ns", k, fmt.Sprint(step), 0)
			}
			if apply(t, target, t0, w)[0].Changed {
				exists[k] = w.Kind != persist.Delete
				if !mine {
					changed[k] = true
				}
			}
		}
		var want []persist.Key
		for _, k := range keySet {
			if changed[k] {
				want = append(want, persist.Key{Namespace: "ns", Key: k})
			}
		}
		if got := changes(t, db).Keys; !slices.Equal(got, want) {
			t.Fatalf("step %d: Changes().Keys = %v; want %v", step, got, want)
		}
	}
}

// TestChangesOwnRecordBounded checks that a DB whose owner does not call
// Changes keeps a bounded record of its own writes, and that, once the
// record was dropped, others' changes are reported as a Reset while its
// own alone are still reported as nothing.
func TestChangesOwnRecordBounded(t *testing.T) {
	db := mustOpen(t, "")
	other := mustOpen(t, db.Path())
	write := func(n int) {
		var ws []persist.Write
		for i := range n {
			ws = append(ws, putW("ns", fmt.Sprint(i), "v", 0))
			if len(ws) == 256 || i == n-1 {
				apply(t, db, t0, ws...)
				ws = ws[:0]
			}
		}
	}
	write(persist.OwnLimit + 1)
	if got := db.OwnRecorded(); got > persist.OwnLimit {
		t.Errorf("own record holds %d keys after %d writes; want at most %d", got, persist.OwnLimit+1, persist.OwnLimit)
	}
	if ch := changes(t, db); ch.Reset || ch.Foreign {
		t.Errorf("Changes() after own writes only = %+v; want nothing", ch)
	}
	write(persist.OwnLimit + 1)
	apply(t, other, t0, putW("ns", "theirs", "v", 0))
	if ch := changes(t, db); !ch.Reset {
		t.Errorf("Changes() after the record was dropped and another DB wrote = %+v; want a Reset", ch)
	}
}

// TestChangesExpired checks that another connection's delete of a row that
// had expired (its sweep) is reported as such, and no other change is.
func TestChangesExpired(t *testing.T) {
	db := mustOpen(t, "")
	other := mustOpen(t, db.Path())
	past := time.Now().Add(-time.Hour).UnixMilli()
	future := time.Now().Add(time.Hour).UnixMilli()
	apply(t, other, t0, putW("ns", "swept", "v", past), putW("ns", "deleted", "v", future),
		putW("ns", "forever", "v", 0), putW("ns", "swept-then-set", "v", past))
	changes(t, db)
	if keys := sweep(t, other, time.Now().UnixMilli(), 10); len(keys) != 2 {
		t.Fatalf("sweep deleted %v; want the two expired keys", keys)
	}
	apply(t, other, t0, deleteW("ns", "deleted"), deleteW("ns", "forever"), putW("ns", "swept-then-set", "again", 0))
	ch := changes(t, db)
	want := map[persist.Key]bool{{Namespace: "ns", Key: "swept"}: true}
	if !maps.Equal(ch.Expired, want) {
		t.Errorf("Changes().Expired = %v; want %v", ch.Expired, want)
	}
	if len(ch.Keys) != 4 {
		t.Errorf("Changes().Keys = %v; want all four keys", ch.Keys)
	}
}
