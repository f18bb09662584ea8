package persist_test

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate/internal/persist"
	"github.com/d8da9184/opstate/storage"
)

// as is w written as actor.
func as(actor string, w persist.Write) persist.Write {
	w.Actor = actor
	return w
}

// history returns every recorded change of ns (of key unless ""), oldest
// first, with Seq and Time zeroed once checked to grow and to be SQLite's
// clock of about now.
func history(t *testing.T, db *persist.DB, ns, key string) []storage.Change {
	t.Helper()
	cs, err := db.History(t.Context(), ns, key, 0, 1<<20)
	if err != nil {
		t.Fatalf("History(%q, %q) = %v", ns, key, err)
	}
	out := make([]storage.Change, len(cs))
	for i, c := range cs {
		out[len(cs)-1-i] = c
	}
	now := time.Now().UnixMilli()
	for i := range out {
		if i > 0 && out[i].Seq <= out[i-1].Seq {
			t.Errorf("change %d has Seq %d after %d", i, out[i].Seq, out[i-1].Seq)
		}
		if d := now - out[i].Time; d < 0 || d > time.Minute.Milliseconds() {
			t.Errorf("change %d has Time %d, %d ms before now", i, out[i].Time, d)
		}
		out[i].Seq, out[i].Time = 0, 0
	}
	return out
}

// checkHistory reports a history of ns that is not want, oldest first.
func checkHistory(t *testing.T, db *persist.DB, ns string, want ...storage.Change) {
	t.Helper()
	got := history(t, db, ns, "")
	if len(got) != len(want) {
		t.Errorf("history of %q has %d changes; want %d:\n got %+v\nwant %+v", ns, len(got), len(want), got, want)
		return
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("change %d of %q = %+v; want %+v", i, ns, got[i], want[i])
		}
	}
}

func setHistory(t *testing.T, db *persist.DB, ns string, keep int) {
	t.Helper()
	if err := db.SetHistory(t.Context(), ns, keep); err != nil {
		t.Fatalf("SetHistory(%q, %d) = %v", ns, keep, err)
	}
}

// TestHistoryRecordsEveryWrite checks that every kind of write, and a
// sweep, records in a namespace that keeps history what it changed and
// who changed it, and nothing when it changed nothing or the namespace
// keeps none; that the sweep's deletes are expiries, by the DB's actor,
// though SQLite's clock says the rows have not expired, and that a delete
// after the sweep is a delete again.
func TestHistoryRecordsEveryWrite(t *testing.T) {
	db, err := persist.Open(tempPath(t), persist.Options{Actor: "sweeper"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	setHistory(t, db, "h", 100)
	now := time.Now().UnixMilli()
	later := now + time.Hour.Milliseconds() // live by SQLite's clock
	set := func(key, before string, beforeExp int64, after string, exp int64, actor string) storage.Change {
		return storage.Change{Namespace: "h", Key: key, Op: storage.ChangeSet, Existed: before != "", Before: before,
			BeforeExpiresAt: beforeExp, After: after, ExpiresAt: exp, Actor: actor}
	}
	del := func(op storage.ChangeOp, key, before string, beforeExp int64, actor string) storage.Change {
		return storage.Change{Namespace: "h", Key: key, Op: op, Existed: true, Before: before, BeforeExpiresAt: beforeExp, Actor: actor}
	}
	steps := []struct {
		name string
		ws   []persist.Write
		want []storage.Change
	}{
		{"Put", []persist.Write{as("a", putW("h", "k", "1", 0))}, []storage.Change{set("k", "", 0, "1", 0, "a")}},
		{"Put with expiry", []persist.Write{as("b", putW("h", "k", "2", later))}, []storage.Change{set("k", "1", 0, "2", later, "b")}},
		{"PutIfAbsent of a live key", []persist.Write{as("a", persist.Write{Kind: persist.PutIfAbsent, Namespace: "h", Key: "k", Value: "3"})}, nil},
		{"PutIfAbsent", []persist.Write{as("a", persist.Write{Kind: persist.PutIfAbsent, Namespace: "h", Key: "n", Value: "x"})}, []storage.Change{set("n", "", 0, "x", 0, "a")}},
		{"Swap that fails", []persist.Write{as("a", persist.Write{Kind: persist.Swap, Namespace: "h", Key: "k", Old: "wrong", Value: "3"})}, nil},
		{"Swap", []persist.Write{as("c", persist.Write{Kind: persist.Swap, Namespace: "h", Key: "k", Old: "2", Value: "3"})}, []storage.Change{set("k", "2", later, "3", 0, "c")}},
		{"DeleteIf that fails", []persist.Write{as("a", persist.Write{Kind: persist.DeleteIf, Namespace: "h", Key: "k", Old: "nope"})}, nil},
		{"DeleteIf", []persist.Write{as("a", persist.Write{Kind: persist.DeleteIf, Namespace: "h", Key: "k", Old: "3"})}, []storage.Change{del(storage.ChangeDelete, "k", "3", 0, "a")}},
		{"Delete of a missing key", []persist.Write{as("a", deleteW("h", "missing"))}, nil},
		{"Delete", []persist.Write{as("b", deleteW("h", "n"))}, []storage.Change{del(storage.ChangeDelete, "n", "x", 0, "b")}},
		{"batch of actors", []persist.Write{as("a", putW("h", "a", "1", 0)), as("b", putW("h", "b", "1", 0)), as("", putW("h", "c", "1", 0)), as("a", putW("other", "k", "1", 0))},
			[]storage.Change{set("a", "", 0, "1", 0, "a"), set("b", "", 0, "1", 0, "b"), set("c", "", 0, "1", 0, "")}},
		{"DeleteNamespace", []persist.Write{as("c", deleteNamespaceW("h"))},
			[]storage.Change{del(storage.ChangeDelete, "a", "1", 0, "c"), del(storage.ChangeDelete, "b", "1", 0, "c"), del(storage.ChangeDelete, "c", "1", 0, "c")}},
		{"namespace without history", []persist.Write{as("a", putW("other", "k", "2", 0)), as("a", deleteW("other", "k"))}, nil},
		{"expiring rows", []persist.Write{as("a", putW("h", "e", "v", later)), as("a", putW("h", "f", "w", later+time.Hour.Milliseconds()))},
			[]storage.Change{set("e", "", 0, "v", later, "a"), set("f", "", 0, "w", later+time.Hour.Milliseconds(), "a")}},
	}
	var want []storage.Change
	for _, st := range steps {
		if st.ws[0].Kind.Conditional() {
			db.Apply(t.Context(), now, st.ws)
		} else {
			apply(t, db, now, st.ws...)
		}
		want = append(want, st.want...)
		checkHistory(t, db, "h", want...)
		if t.Failed() {
			t.Fatalf("after %s", st.name)
		}
	}
	// A sweep at a time past e's expiry, which SQLite's clock has not
	// reached: an expiry by the DB's actor.
	if keys := sweep(t, db, later+1, 10); len(keys) != 1 {
		t.Fatalf("sweep deleted %v; want h/e", keys)
	}
	want = append(want, del(storage.ChangeExpire, "e", "v", later, "sweeper"))
	checkHistory(t, db, "h", want...)
	apply(t, db, now, as("a", deleteW("h", "f")))
	want = append(want, del(storage.ChangeDelete, "f", "w", later+time.Hour.Milliseconds(), "a"))
	checkHistory(t, db, "h", want...)
	// A delete of a row SQLite's clock says has expired is an expiry,
	// whoever makes it.
	past := now - time.Hour.Milliseconds()
	apply(t, db, past-time.Hour.Milliseconds(), as("a", putW("h", "p", "old", past)))
	apply(t, db, now, as("b", deleteW("h", "p")))
	want = append(want, set("p", "", 0, "old", past, "a"), del(storage.ChangeExpire, "p", "old", past, "b"))
	checkHistory(t, db, "h", want...)
	if got := history(t, db, "other", ""); len(got) != 0 {
		t.Errorf("history of a namespace that keeps none = %+v; want none", got)
	}
}

// TestHistoryFailedBatch checks that a batch that fails records nothing:
// the history is written in the batch's transaction.
func TestHistoryFailedBatch(t *testing.T) {
	db := mustOpen(t, "")
	setHistory(t, db, "h", 100)
	old, err := db.LimitLength(200)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Apply(t.Context(), t0, []persist.Write{as("a", putW("h", "x", "ok", 0)), as("a", deleteW("h", "y")),
		as("b", putW("h", "y", strings.Repeat("v", 300), 0))})
	if err == nil {
		t.Fatal("Apply of a row over the length limit succeeded")
	}
	db.LimitLength(old)
	checkHistory(t, db, "h")
	apply(t, db, t0, as("b", putW("h", "x", "ok", 0)))
	checkHistory(t, db, "h", storage.Change{Namespace: "h", Key: "x", Op: storage.ChangeSet, After: "ok", Actor: "b"})
}

// TestHistoryOtherWriters checks that plain SQL on another connection is
// recorded with no actor, even right after the DB's own writes, and that
// another DB on the file records its own actor.
func TestHistoryOtherWriters(t *testing.T) {
	db := mustOpen(t, "")
	setHistory(t, db, "h", 100)
	apply(t, db, t0, as("mine", putW("h", "a", "1", 0)))
	execRaw(t, db.Path(),
		`INSERT INTO operational_state VALUES ('h', 'b', 'sql', '2026-01-01T00:00:00.000Z', NULL)`,
		`UPDATE operational_state SET value = '2' WHERE key = 'a'`,
		`UPDATE operational_state SET key = 'c' WHERE key = 'b'`,
		`DELETE FROM operational_state WHERE key = 'c'`)
	other, err := persist.Open(db.Path(), persist.Options{})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, other, t0, as("theirs", putW("h", "a", "3", 0)))
	other.Close()
	apply(t, db, t0, as("mine", deleteW("h", "a")))
	set := func(key, before, after, actor string) storage.Change {
		return storage.Change{Namespace: "h", Key: key, Op: storage.ChangeSet, Existed: before != "", Before: before, After: after, Actor: actor}
	}
	checkHistory(t, db, "h",
		set("a", "", "1", "mine"),
		set("b", "", "sql", ""),
		set("a", "1", "2", ""),
		storage.Change{Namespace: "h", Key: "b", Op: storage.ChangeDelete, Existed: true, Before: "sql"},
		set("c", "", "sql", ""),
		storage.Change{Namespace: "h", Key: "c", Op: storage.ChangeDelete, Existed: true, Before: "sql"},
		set("a", "2", "3", "theirs"),
		storage.Change{Namespace: "h", Key: "a", Op: storage.ChangeDelete, Existed: true, Before: "3", Actor: "mine"})
	if got := history(t, db, "h", "b"); len(got) != 2 || got[0].Key != "b" || got[1].Key != "b" {
		t.Errorf("History(h, b) = %+v; want b's two changes", got)
	}
}

// TestHistoryPaging checks History's limit and before.
func TestHistoryPaging(t *testing.T) {
	db := mustOpen(t, "")
	setHistory(t, db, "h", 100)
	for _, v := range []string{"1", "2", "3", "4", "5"} {
		apply(t, db, t0, putW("h", "k", v, 0), putW("h", "j", v, 0))
	}
	page, err := db.History(t.Context(), "h", "k", 0, 2)
	if err != nil || len(page) != 2 || page[0].After != "5" || page[1].After != "4" {
		t.Fatalf("History(h, k, 0, 2) = %+v, %v; want 5 and 4", page, err)
	}
	page, err = db.History(t.Context(), "h", "k", page[1].Seq, 10)
	if err != nil || len(page) != 3 || page[0].After != "3" || page[2].After != "1" {
		t.Fatalf("History(h, k, before 4's, 10) = %+v, %v; want 3, 2, 1", page, err)
	}
	all, err := db.History(t.Context(), "h", "", 0, 3)
	if err != nil || len(all) != 3 || all[0].Key != "j" || all[1].Key != "k" {
		t.Fatalf("History(h, \"\", 0, 3) = %+v, %v; want j, k, j", all, err)
	}
}

// TestPruneHistory checks that PruneHistory deletes the oldest changes
// beyond a namespace's keep, at most limit a call, and every change of a
// namespace whose history was turned off, which records nothing more.
func TestPruneHistory(t *testing.T) {
	db := mustOpen(t, "")
	setHistory(t, db, "h", 3)
	setHistory(t, db, "g", 100)
	for i := range 10 {
		apply(t, db, t0, putW("h", "k", string(rune('a'+i)), 0), putW("g", "k", "v", 0))
	}
	prune := func(limit, want int) {
		t.Helper()
		n, err := db.PruneHistory(t.Context(), limit)
		if err != nil || n != want {
			t.Fatalf("PruneHistory(%d) = %d, %v; want %d", limit, n, err, want)
		}
	}
	prune(4, 4)
	prune(4, 3)
	prune(4, 0)
	got := history(t, db, "h", "")
	if len(got) != 3 || got[0].After != "h" || got[2].After != "j" {
		t.Errorf("history of h after pruning = %+v; want h, i, j", got)
	}
	if got := history(t, db, "g", ""); len(got) != 10 {
		t.Errorf("history of g has %d changes; want its 10", len(got))
	}
	setHistory(t, db, "g", 0)
	keeps, err := db.HistoryKeeps(t.Context())
	if err != nil || len(keeps) != 1 || keeps["h"] != 3 {
		t.Errorf("HistoryKeeps() = %v, %v; want h: 3", keeps, err)
	}
	apply(t, db, t0, putW("g", "k", "after", 0))
	prune(6, 6)
	prune(6, 4)
	prune(6, 0)
	// The newest change of the history, g's, was emptied rather than
	// deleted: the next change's seq follows it.
	var max int64
	if err := rawDB(t, db.Path()).QueryRow(`SELECT max(seq) FROM operational_state_history WHERE namespace = ''`).Scan(&max); err != nil {
		t.Fatalf("the newest change, emptied: %v", err)
	}
	apply(t, db, t0, putW("h", "k", "k", 0))
	if cs, _ := db.History(t.Context(), "h", "k", 0, 1); len(cs) != 1 || cs[0].Seq != max+1 {
		t.Errorf("seq after the emptied newest change %d = %+v; want %d", max, cs, max+1)
	}
	if got := history(t, db, "g", ""); len(got) != 0 {
		t.Errorf("history of g turned off = %+v; want none", got)
	}
	if err := db.SetHistory(t.Context(), "g", -1); err == nil {
		t.Error("SetHistory(g, -1) = nil; want an error")
	}
}

// TestMigrateToHistory checks that a file of schema version 2 is brought
// to the current version, its rows kept, with a history that works and a
// schema as a new file's, and that opening it again changes nothing.
func TestMigrateToHistory(t *testing.T) {
	path := tempPath(t)
	if err := persist.CreateAtVersion(path, 2); err != nil {
		t.Fatal(err)
	}
	execRaw(t, path, `INSERT INTO operational_state VALUES ('h', 'k', 'old', '2026-01-01T00:00:00.000Z', NULL)`)
	if got := schemaOf(t, path); strings.Contains(got, "history") {
		t.Fatalf("a file of version 2 has history objects:\n%s", got)
	}
	db, err := persist.Open(path, persist.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var v int
	if err := rawDB(t, path).QueryRow(`PRAGMA user_version`).Scan(&v); err != nil || v != persist.SchemaVersion {
		t.Errorf("user_version = %d, %v; want %d", v, err, persist.SchemaVersion)
	}
	if got, want := schemaOf(t, path), schemaOf(t, mustOpen(t, "").Path()); got != want {
		t.Errorf("schema after migration:\n%s\nwant:\n%s", got, want)
	}
	checkGet(t, db, "h", "k", &persist.Row{Value: "old"})
	setHistory(t, db, "h", 10)
	apply(t, db, t0, as("a", putW("h", "k", "new", 0)))
	checkHistory(t, db, "h", storage.Change{Namespace: "h", Key: "k", Op: storage.ChangeSet, Existed: true, Before: "old", After: "new", Actor: "a"})
	db.Close()

	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if db, err = persist.Open(path, persist.Options{}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("a second Open changed the migrated file")
	}
}

// TestHistoryRepairedWhileOpen checks that a history table dropped and
// made again by another connection, or a history trigger dropped, is put
// back by the DB's next Changes, after which its writes are recorded with
// their actor again.
func TestHistoryRepairedWhileOpen(t *testing.T) {
	for _, edit := range [][]string{
		{`DROP TABLE operational_state_history`},
		{`DROP TABLE operational_state_history`, `CREATE TABLE operational_state_history (seq INTEGER PRIMARY KEY, x TEXT)`},
		{`DROP TRIGGER operational_state_history_update`},
	} {
		t.Run(edit[len(edit)-1], func(t *testing.T) {
			db := mustOpen(t, "")
			setHistory(t, db, "h", 10)
			apply(t, db, t0, as("a", putW("h", "k", "1", 0)))
			execRaw(t, db.Path(), edit...)
			if ch := changes(t, db); !ch.Reset {
				t.Errorf("Changes() after the edit = %+v; want a Reset", ch)
			}
			apply(t, db, t0, as("b", putW("h", "k", "2", 0)))
			got := history(t, db, "h", "k")
			if n := len(got); n == 0 || got[n-1].After != "2" || got[n-1].Actor != "b" {
				t.Errorf("history after the repair = %+v; want the last change set 2 by b", got)
			}
		})
	}
}

// TestMigrateToHistoryFails checks that a migration to the history that
// fails part way (a file of version 2 with an index named as the history
// table, which the migration cannot create) rolls back whole: Open fails
// and the file is as it was, at version 2.
func TestMigrateToHistoryFails(t *testing.T) {
	path := tempPath(t)
	if err := persist.CreateAtVersion(path, 2); err != nil {
		t.Fatal(err)
	}
	execRaw(t, path,
		`INSERT INTO operational_state VALUES ('h', 'k', 'old', '2026-01-01T00:00:00.000Z', NULL)`,
		`CREATE INDEX operational_state_history ON operational_state (value)`)
	before := dump(t, path)
	if db, err := persist.Open(path, persist.Options{}); err == nil {
		db.Close()
		t.Fatal("Open of a file whose migration must fail succeeded")
	}
	if after := dump(t, path); after != before {
		t.Errorf("the failed migration changed the file:\n%s\nwas:\n%s", after, before)
	}
	if !strings.Contains(before, "user_version 2") {
		t.Errorf("dump of the file = %s; want user_version 2", before)
	}
}
