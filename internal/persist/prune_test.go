package persist_test

import (
	"fmt"
	"testing"

	"github.com/d8da9184/opstate/internal/persist"
)

// pruneAll calls PruneHistory with limit until a call deletes fewer, and
// returns how many changes the calls deleted and how many calls it took.
func pruneAll(t *testing.T, db *persist.DB, limit int) (deleted, calls int) {
	t.Helper()
	for {
		n, err := db.PruneHistory(t.Context(), limit)
		if err != nil {
			t.Fatalf("PruneHistory(%d) = %v", limit, err)
		}
		deleted += n
		calls++
		if n < limit {
			return deleted, calls
		}
	}
}

// checkKept reports a history of ns that is not the values v<from> to
// v<to-1>, oldest first.
func checkKept(t *testing.T, db *persist.DB, ns string, from, to int) {
	t.Helper()
	got := history(t, db, ns, "")
	if len(got) != to-from {
		t.Errorf("history of %q has %d changes; want %d", ns, len(got), to-from)
		return
	}
	for i, c := range got {
		if want := fmt.Sprint("v", from+i); c.After != want {
			t.Errorf("change %d of %q set %q; want %q", i, ns, c.After, want)
			return
		}
	}
}

// TestPruneRounds checks that pruning a large history reads it about
// twice however many calls the pruning takes (a call that searched it
// afresh read it once a call, or once a namespace a call), keeps each
// namespace's newest changes and deletes every change of a namespace whose
// history was turned off, and that, once done, a call reads nothing until
// a change is recorded.
func TestPruneRounds(t *testing.T) {
	db := mustOpen(t, "")
	keeps := map[string]int{"a": 100, "b": 10, "c": 1000, "d": 1 << 20}
	for ns, keep := range keeps {
		setHistory(t, db, ns, keep)
	}
	const changes = 3000
	for i := 0; i < changes; i += 100 {
		var ws []persist.Write
		for j := i; j < i+100; j++ {
			for _, ns := range []string{"a", "b", "c", "d"} {
				if ns != "d" || j < 500 {
					ws = append(ws, putW(ns, fmt.Sprint("k", j%7), fmt.Sprint("v", j), 0))
				}
			}
		}
		apply(t, db, t0, ws...)
	}
	setHistory(t, db, "d", 0)
	const recorded = 3*changes + 500

	deleted, calls := pruneAll(t, db, 1000)
	if want := (changes - 100) + (changes - 10) + (changes - 1000) + 500; deleted != want {
		t.Errorf("pruning deleted %d changes; want %d", deleted, want)
	}
	if calls < 8 {
		t.Errorf("pruning took %d calls of 1000; want at least 8", calls)
	}
	read := db.PruneRowsRead()
	if read > 2*recorded+100 {
		t.Errorf("pruning %d changes in %d calls read %d rows of the history; want at most twice its %d changes",
			deleted, calls, read, recorded)
	}
	checkKept(t, db, "a", changes-100, changes)
	checkKept(t, db, "b", changes-10, changes)
	checkKept(t, db, "c", changes-1000, changes)
	checkKept(t, db, "d", 0, 0)

	if n, err := db.PruneHistory(t.Context(), 1000); err != nil || n != 0 {
		t.Fatalf("PruneHistory once done = %d, %v; want 0", n, err)
	}
	if again := db.PruneRowsRead(); again > read+2 {
		t.Errorf("PruneHistory with nothing recorded since read %d rows of the history; want none", again-read-1)
	}
	apply(t, db, t0, putW("b", "k", fmt.Sprint("v", changes), 0))
	if n, err := db.PruneHistory(t.Context(), 1000); err != nil || n != 1 {
		t.Errorf("PruneHistory after one more change of b = %d, %v; want 1", n, err)
	}
	checkKept(t, db, "b", changes-9, changes+1)
}

// TestPruneKeepChanged checks that a keep changed while pruning is under
// way holds from the next call on: raised, it keeps the changes it now
// covers; lowered, the pruning goes on to it.
func TestPruneKeepChanged(t *testing.T) {
	db := mustOpen(t, "")
	setHistory(t, db, "e", 10)
	const changes = 5000
	for i := 0; i < changes; i += 500 {
		var ws []persist.Write
		for j := i; j < i+500; j++ {
			ws = append(ws, putW("e", "k", fmt.Sprint("v", j), 0))
		}
		apply(t, db, t0, ws...)
	}
	if n, err := db.PruneHistory(t.Context(), 1000); err != nil || n != 1000 {
		t.Fatalf("PruneHistory(1000) = %d, %v; want 1000", n, err)
	}
	setHistory(t, db, "e", 3000)
	if deleted, _ := pruneAll(t, db, 1000); deleted != 1000 {
		t.Errorf("pruning after the keep was raised to 3000 deleted %d changes; want 1000", deleted)
	}
	checkKept(t, db, "e", changes-3000, changes)
	setHistory(t, db, "e", 2000)
	if n, err := db.PruneHistory(t.Context(), 500); err != nil || n != 500 {
		t.Fatalf("PruneHistory(500) = %d, %v; want 500", n, err)
	}
	setHistory(t, db, "e", 5)
	if deleted, _ := pruneAll(t, db, 1000); deleted != 2495 {
		t.Errorf("pruning after the keep was lowered to 5 deleted %d changes; want 2495", deleted)
	}
	checkKept(t, db, "e", changes-5, changes)
}
