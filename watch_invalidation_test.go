package opstate_test

import (
	"fmt"
	"testing"

	"github.com/d8da9184/opstate"
)

// TestWatchPreciseInvalidation checks, through the Store, that a foreign
// commit drops from the cache only what it changed. With 1,000 keys of one
// namespace and 100 of another cached: a write by plain SQL to one key
// drops exactly that entry, and reading all 1,000 keys afterwards reads
// SQLite once; writes to another table of the file drop nothing; another
// connection's deletion of the other namespace (a namespace-wide change)
// drops its 100 entries and none of the first namespace's. A watcher tells
// when each foreign commit has been applied. (The other table is created
// before the Store opens the file: creating it is a schema change, which
// empties the cache, TestChangesSchemaChange in persist.)
func TestWatchPreciseInvalidation(t *testing.T) {
	path := dbPath(t)
	mustOpen(t, path, opstate.Options{SyncInterval: -1}).Close()
	db := sqlDB(t, path)
	if _, err := db.Exec(`CREATE TABLE app (id INTEGER PRIMARY KEY, note TEXT)`); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, path, opstate.Options{SyncInterval: watchSync})
	hot := make([]string, 1000)
	for i := range hot {
		hot[i] = fmt.Sprint("k", i)
		mustSet(t, s, "hot", hot[i], "v")
	}
	for i := range 100 {
		mustSet(t, s, "cold", fmt.Sprint("k", i), "v")
	}
	for i := range 3 {
		mustSet(t, s, "small", fmt.Sprint("k", i), "v")
	}
	warm(t, s, "hot", hot...)
	events := watch(t, s, "hot")
	marks := watch(t, s, "mark")
	mark := 0
	// applied sets a key of the namespace mark by plain SQL and waits for
	// its event: every foreign commit before it has been applied.
	applied := func() {
		t.Helper()
		mark++
		if _, err := db.Exec(`INSERT INTO operational_state VALUES ('mark', ?, 'm', '2026-03-07T10:00:00.000Z', NULL)`, fmt.Sprint(mark)); err != nil {
			t.Fatal(err)
		}
		untilSet(t, marks, fmt.Sprint(mark), "m", foreignBound)
	}
	// readsOf returns how many reads of SQLite reading every hot key took,
	// and checks their values.
	readsOf := func(changed string) uint64 {
		t.Helper()
		loads := s.Stats().Misses
		for _, k := range hot {
			want := "v"
			if k == changed {
				want = "new"
			}
			wantGet(t, s, "hot", k, want, true)
		}
		return s.Stats().Misses - loads
	}
	entries := s.CacheStats().Entries
	if want := 1000 + 100 + 3; entries != want {
		t.Fatalf("CacheStats().Entries = %d after the writes; want %d", entries, want)
	}

	if _, err := db.Exec(`UPDATE operational_state SET value = 'new' WHERE namespace = 'hot' AND key = 'k7'`); err != nil {
		t.Fatal(err)
	}
	if ev := recv(t, events, foreignBound); ev.Key != "k7" || ev.Value != "new" {
		t.Fatalf("event %s; want the Set of k7", eventsString([]opstate.Event{ev}))
	}
	if got := s.CacheStats().Entries; got != entries-1 {
		t.Errorf("a foreign write to one key left %d entries of %d; want %d", got, entries, entries-1)
	}
	if n := readsOf("k7"); n != 1 {
		t.Errorf("reading the 1,000 keys after a foreign write to one of them read SQLite %d times; want 1", n)
	}

	for i := range 10 {
		if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS app (id INTEGER PRIMARY KEY, note TEXT)`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO app (note) VALUES (?)`, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	applied()
	if got := s.CacheStats().Entries; got != entries {
		t.Errorf("writes to another table of the file left %d entries; want %d", got, entries)
	}
	if n := readsOf("k7"); n != 0 {
		t.Errorf("reading the 1,000 keys after writes to another table read SQLite %d times; want 0", n)
	}

	if _, err := db.Exec(`DELETE FROM operational_state WHERE namespace = 'cold'`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM operational_state WHERE namespace = 'small'`); err != nil {
		t.Fatal(err)
	}
	applied()
	if got := s.CacheStats().Entries; got != entries-103 {
		t.Errorf("foreign deletes of the namespaces cold (100 keys) and small (3) left %d entries of %d; want %d", got, entries, entries-103)
	}
	if n := readsOf("k7"); n != 0 {
		t.Errorf("reading the 1,000 keys after another namespace was deleted read SQLite %d times; want 0", n)
	}
	wantGet(t, s, "cold", "k1", "", false)
	wantGet(t, s, "small", "k1", "", false)
}
