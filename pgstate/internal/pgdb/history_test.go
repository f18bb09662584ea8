package pgdb_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/d8da9184/opstate/pgstate/internal/pgdb"
	"github.com/d8da9184/opstate/pgstate/internal/pgtest"
	"github.com/d8da9184/opstate/storage"
	"github.com/jackc/pgx/v5"
)

// rec is what a test checks of a recorded change.
type rec struct {
	op            storage.ChangeOp
	key           string
	existed       bool
	before, after string
	actor         string
	bexp, aexp    bool // the expiries are set
}

func recOf(c storage.Change) rec {
	return rec{op: c.Op, key: c.Key, existed: c.Existed, before: c.Before, after: c.After,
		actor: c.Actor, bexp: c.BeforeExpiresAt != 0, aexp: c.ExpiresAt != 0}
}

// newChanges returns the changes of ns with Seq above after, oldest
// first, and the largest Seq seen.
func newChanges(t *testing.T, db *pgdb.DB, ns string, after int64) ([]storage.Change, int64) {
	t.Helper()
	cs, err := db.History(context.Background(), ns, "", 0, 1000)
	if err != nil {
		t.Fatalf("History(%q): %v", ns, err)
	}
	slices.Reverse(cs)
	i := slices.IndexFunc(cs, func(c storage.Change) bool { return c.Seq > after })
	if i < 0 {
		return nil, after
	}
	return cs[i:], cs[len(cs)-1].Seq
}

func setHistory(t *testing.T, db *pgdb.DB, ns string, keep int) {
	t.Helper()
	if err := db.SetHistory(context.Background(), ns, keep); err != nil {
		t.Fatalf("SetHistory(%q, %d): %v", ns, keep, err)
	}
}

func as(actor string, w storage.Write) storage.Write { w.Actor = actor; return w }

// TestHistoryWriteKinds applies every kind of write, by the DB and behind
// its back, to a namespace that keeps history, and checks the changes
// each records, in order: what the key held before and after, the
// expiries, the op (a delete of a row past its expiry, and a sweep's, as
// expire) and the actor (the write's, the sweep's Options.Actor, none for
// plain SQL). A conditional write whose condition fails records nothing,
// and a namespace that keeps no history records nothing.
func TestHistoryWriteKinds(t *testing.T) {
	dsn, raw := server(t)
	db := openDSN(t, dsn, pgdb.Options{Actor: "sweeper"})
	setHistory(t, db, "h", 100)
	now := localNow()
	a := func(w storage.Write) storage.Write { return as("alice", w) }
	hour := now + time.Hour.Milliseconds()
	steps := []struct {
		name string
		do   func()
		want []rec
	}{
		{"insert", func() { apply(t, db, now, a(putW("h", "a", "1", 0, now))) },
			[]rec{{op: storage.ChangeSet, key: "a", after: "1", actor: "alice"}}},
		{"update-ttl", func() { apply(t, db, now, a(putW("h", "a", "2", time.Hour, now))) },
			[]rec{{op: storage.ChangeSet, key: "a", existed: true, before: "1", after: "2", aexp: true, actor: "alice"}}},
		{"put-if-absent", func() {
			apply(t, db, now, a(storage.Write{Kind: storage.PutIfAbsent, Namespace: "h", Key: "a", Value: "3"}),
				a(storage.Write{Kind: storage.PutIfAbsent, Namespace: "h", Key: "b", Value: "1", ExpiresAt: hour}))
		}, []rec{{op: storage.ChangeSet, key: "b", after: "1", aexp: true, actor: "alice"}}},
		{"swap", func() {
			apply(t, db, now, a(storage.Write{Kind: storage.Swap, Namespace: "h", Key: "a", Old: "2", Value: "4"}),
				a(storage.Write{Kind: storage.Swap, Namespace: "h", Key: "a", Old: "9", Value: "5"}))
		}, []rec{{op: storage.ChangeSet, key: "a", existed: true, before: "2", bexp: true, after: "4", actor: "alice"}}},
		{"delete-if", func() {
			apply(t, db, now, a(storage.Write{Kind: storage.DeleteIf, Namespace: "h", Key: "b", Old: "1"}),
				a(storage.Write{Kind: storage.DeleteIf, Namespace: "h", Key: "a", Old: "9"}))
		}, []rec{{op: storage.ChangeDelete, key: "b", existed: true, before: "1", bexp: true, actor: "alice"}}},
		{"delete", func() {
			apply(t, db, now, a(storage.Write{Kind: storage.Delete, Namespace: "h", Key: "a"}),
				a(storage.Write{Kind: storage.Delete, Namespace: "h", Key: "a"}))
		}, []rec{{op: storage.ChangeDelete, key: "a", existed: true, before: "4", actor: "alice"}}},
		{"puts-one-statement", func() {
			apply(t, db, now, a(putW("h", "c", "1", 0, now)), a(putW("h", "d", "1", 0, now)), a(putW("h", "c", "2", 0, now)))
		}, []rec{
			{op: storage.ChangeSet, key: "c", after: "1", actor: "alice"},
			{op: storage.ChangeSet, key: "d", after: "1", actor: "alice"},
			{op: storage.ChangeSet, key: "c", existed: true, before: "1", after: "2", actor: "alice"},
		}},
		{"actors-in-a-batch", func() {
			apply(t, db, now, a(putW("h", "x", "1", 0, now)), as("bob", putW("h", "y", "1", 0, now)),
				putW("h", "x", "2", 0, now), as("bob", storage.Write{Kind: storage.Delete, Namespace: "h", Key: "y"}))
		}, []rec{
			{op: storage.ChangeSet, key: "x", after: "1", actor: "alice"},
			{op: storage.ChangeSet, key: "y", after: "1", actor: "bob"},
			{op: storage.ChangeSet, key: "x", existed: true, before: "1", after: "2"},
			{op: storage.ChangeDelete, key: "y", existed: true, before: "1", actor: "bob"},
		}},
		{"delete-namespace", func() { apply(t, db, now, as("carol", storage.Write{Kind: storage.DeleteNamespace, Namespace: "h"})) },
			[]rec{
				{op: storage.ChangeDelete, key: "c", existed: true, before: "2", actor: "carol"},
				{op: storage.ChangeDelete, key: "d", existed: true, before: "1", actor: "carol"},
				{op: storage.ChangeDelete, key: "x", existed: true, before: "2", actor: "carol"},
			}},
		{"delete-expired", func() {
			rawPut(t, raw, "h", "e", "old", -time.Second)
			apply(t, db, now, a(storage.Write{Kind: storage.Delete, Namespace: "h", Key: "e"}))
		}, []rec{
			{op: storage.ChangeSet, key: "e", after: "old", aexp: true},
			{op: storage.ChangeExpire, key: "e", existed: true, before: "old", bexp: true, actor: "alice"},
		}},
		{"put-if-absent-over-expired", func() {
			rawPut(t, raw, "h", "g", "old", -time.Second)
			apply(t, db, now, a(storage.Write{Kind: storage.PutIfAbsent, Namespace: "h", Key: "g", Value: "new"}))
		}, []rec{
			{op: storage.ChangeSet, key: "g", after: "old", aexp: true},
			{op: storage.ChangeSet, key: "g", existed: true, before: "old", bexp: true, after: "new", actor: "alice"},
		}},
		{"sweep", func() {
			rawPut(t, raw, "h", "f", "old", -time.Second)
			if _, err := db.DeleteExpired(context.Background(), now, 100); err != nil {
				t.Fatal(err)
			}
		}, []rec{
			{op: storage.ChangeSet, key: "f", after: "old", aexp: true},
			{op: storage.ChangeExpire, key: "f", existed: true, before: "old", bexp: true, actor: "sweeper"},
		}},
		{"no-history-namespace", func() { apply(t, db, now, a(putW("plain", "k", "v", 0, now))) }, nil},
	}
	var last int64
	for _, st := range steps {
		st.do()
		var cs []storage.Change
		cs, last = newChanges(t, db, "h", last)
		got := make([]rec, len(cs))
		for i, c := range cs {
			got[i] = recOf(c)
			if c.Namespace != "h" {
				t.Errorf("%s: change %d of namespace %q; want h", st.name, c.Seq, c.Namespace)
			}
		}
		if st.name == "delete-namespace" { // the rows' order is the plan's
			slices.SortFunc(got, func(x, y rec) int { return cmp.Compare(x.key, y.key) })
		}
		if !slices.Equal(got, st.want) {
			t.Errorf("%s: recorded\n\t%+v\nwant\n\t%+v", st.name, got, st.want)
		}
	}
	if cs, err := db.History(context.Background(), "plain", "", 0, 10); err != nil || len(cs) != 0 {
		t.Errorf("History of a namespace without history = %+v, %v; want none", cs, err)
	}
}

// TestHistoryChangeFields checks a change's times and expiries: Time is
// the server's clock at the write, an expiry is an instant of the DB's
// clock, and Seq grows.
func TestHistoryChangeFields(t *testing.T) {
	db, _, raw := mustOpen(t)
	setHistory(t, db, "h", 10)
	now := localNow()
	before := serverNow(t, raw)
	apply(t, db, now, putW("h", "k", "1", time.Hour, now))
	apply(t, db, now, putW("h", "k", "2", 2*time.Hour, now))
	after := serverNow(t, raw)
	cs, err := db.History(context.Background(), "h", "k", 0, 10)
	if err != nil || len(cs) != 2 {
		t.Fatalf("History = %+v, %v; want 2 changes", cs, err)
	}
	if cs[0].Seq <= cs[1].Seq {
		t.Errorf("Seqs %d, %d; want newest first, growing", cs[0].Seq, cs[1].Seq)
	}
	for _, c := range cs {
		if c.Time < before-1 || c.Time > after+1 {
			t.Errorf("change %d at %d; want within the writes' [%d, %d] on the server's clock", c.Seq, c.Time, before, after)
		}
	}
	near := func(got, want int64) bool {
		return got > want-time.Minute.Milliseconds() && got < want+time.Minute.Milliseconds()
	}
	if c := cs[0]; !near(c.ExpiresAt, now+2*time.Hour.Milliseconds()) || !near(c.BeforeExpiresAt, now+time.Hour.Milliseconds()) {
		t.Errorf("newest change expiries: before %d, after %d; want about %d and %d", c.BeforeExpiresAt, c.ExpiresAt,
			now+time.Hour.Milliseconds(), now+2*time.Hour.Milliseconds())
	}
}

// TestHistoryPlainSQL edits operational_state as psql would: an insert,
// an update, a rename (a delete of the old key and a set of the new), a
// delete, a delete of an expired row, and a TRUNCATE (each row of a
// namespace that keeps history recorded as deleted), each recorded with
// no actor; the delete runs with a search_path that finds none of
// opstate's tables, naming the table with its schema, as psql may.
func TestHistoryPlainSQL(t *testing.T) {
	db, _, raw := mustOpen(t)
	setHistory(t, db, "h", 100)
	now := localNow()
	apply(t, db, now, as("alice", putW("h", "warm", "1", 0, now)))
	var schema string
	if err := raw.QueryRow(context.Background(), `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name, sql string
		want      []rec
	}{
		{"insert", `INSERT INTO operational_state VALUES ('h', 'a', 'one', now(), NULL)`,
			[]rec{{op: storage.ChangeSet, key: "a", after: "one"}}},
		{"update", `UPDATE operational_state SET value = 'two' WHERE namespace = 'h' AND key = 'a'`,
			[]rec{{op: storage.ChangeSet, key: "a", existed: true, before: "one", after: "two"}}},
		{"rename", `UPDATE operational_state SET key = 'b' WHERE namespace = 'h' AND key = 'a'`,
			[]rec{{op: storage.ChangeDelete, key: "a", existed: true, before: "two"}, {op: storage.ChangeSet, key: "b", after: "two"}}},
		{"delete-qualified", `SET search_path = pg_catalog; DELETE FROM "` + schema + `".operational_state WHERE namespace = 'h' AND key = 'b'; RESET search_path`,
			[]rec{{op: storage.ChangeDelete, key: "b", existed: true, before: "two"}}},
		{"delete-expired", `INSERT INTO operational_state VALUES ('h', 'c', 'dead', now(), now() - interval '1 second');
			DELETE FROM operational_state WHERE expires_at <= now()`,
			[]rec{{op: storage.ChangeSet, key: "c", after: "dead", aexp: true}, {op: storage.ChangeExpire, key: "c", existed: true, before: "dead", bexp: true}}},
		{"truncate", `INSERT INTO operational_state VALUES ('h', 'd', 'one', now(), NULL), ('other', 'd', 'x', now(), NULL);
			TRUNCATE operational_state`,
			[]rec{{op: storage.ChangeSet, key: "d", after: "one"}, {op: storage.ChangeDelete, key: "d", existed: true, before: "one"},
				{op: storage.ChangeDelete, key: "warm", existed: true, before: "1"}}},
	}
	_, last := newChanges(t, db, "h", 0)
	for _, st := range steps {
		rawExec(t, raw, st.sql)
		var cs []storage.Change
		cs, last = newChanges(t, db, "h", last)
		got := make([]rec, len(cs))
		for i, c := range cs {
			got[i] = recOf(c)
		}
		if !slices.Equal(got, st.want) {
			t.Errorf("%s: recorded\n\t%+v\nwant\n\t%+v", st.name, got, st.want)
		}
	}
	if cs, _ := db.History(context.Background(), "other", "", 0, 10); len(cs) != 0 {
		t.Errorf("TRUNCATE recorded %d changes of a namespace without history; want 0", len(cs))
	}
}

// TestHistoryActorsOfTwoDBs writes from two DBs of one schema, as two
// agents do, each as its own actor, on keys of one namespace and on one
// key in turn: each change names the actor of the DB that made it, and
// the actor of one batch never leaks into another's (a DB's pooled
// connection runs batches of both actors, and one without).
func TestHistoryActorsOfTwoDBs(t *testing.T) {
	db1, dsn, _ := mustOpen(t)
	db2 := openDSN(t, dsn, pgdb.Options{MaxConns: 1})
	setHistory(t, db1, "h", 1000)
	now := localNow()
	want := map[int64]string{}
	for i := range 20 {
		db, actor := db1, "agent-1"
		if i%2 == 1 {
			db, actor = db2, "agent-2"
		}
		if i%5 == 4 {
			actor = ""
		}
		apply(t, db, now, as(actor, putW("h", "shared", fmt.Sprint(i), 0, now)))
		cs, err := db1.History(context.Background(), "h", "shared", 0, 1)
		if err != nil || len(cs) != 1 || cs[0].After != fmt.Sprint(i) {
			t.Fatalf("History after write %d = %+v, %v", i, cs, err)
		}
		want[cs[0].Seq] = actor
	}
	cs, err := db2.History(context.Background(), "h", "", 0, 100)
	if err != nil || len(cs) != 20 {
		t.Fatalf("History = %d changes, %v; want 20", len(cs), err)
	}
	for _, c := range cs {
		if c.Actor != want[c.Seq] {
			t.Errorf("change %d (value %s) by %q; want %q", c.Seq, c.After, c.Actor, want[c.Seq])
		}
	}
}

// TestHistoryPaging reads a key's and a namespace's history in pages with
// before: every change once, newest first.
func TestHistoryPaging(t *testing.T) {
	db, _, _ := mustOpen(t)
	setHistory(t, db, "h", 100)
	now := localNow()
	for i := range 10 {
		apply(t, db, now, putW("h", fmt.Sprint("k", i%2), fmt.Sprint(i), 0, now))
	}
	for _, key := range []string{"", "k1"} {
		var got []string
		var before int64
		for {
			cs, err := db.History(context.Background(), "h", key, before, 3)
			if err != nil {
				t.Fatal(err)
			}
			if len(cs) == 0 {
				break
			}
			for _, c := range cs {
				got = append(got, c.After)
			}
			before = cs[len(cs)-1].Seq
		}
		want := []string{"9", "8", "7", "6", "5", "4", "3", "2", "1", "0"}
		if key == "k1" {
			want = []string{"9", "7", "5", "3", "1"}
		}
		if !slices.Equal(got, want) {
			t.Errorf("pages of History(h, %q) = %v; want %v", key, got, want)
		}
	}
}

// TestHistoryPruneBounded keeps 3 changes of one namespace, and turns
// another's history off after 5: PruneHistory deletes at most its limit
// at a time, only the changes beyond a keep or of a namespace that keeps
// none, until nothing is left to prune.
func TestHistoryPruneBounded(t *testing.T) {
	db, _, raw := mustOpen(t)
	setHistory(t, db, "kept", 3)
	setHistory(t, db, "dropped", 50)
	now := localNow()
	for i := range 10 {
		apply(t, db, now, putW("kept", "k", fmt.Sprint(i), 0, now))
		if i < 5 {
			apply(t, db, now, putW("dropped", fmt.Sprint("k", i), "v", 0, now))
		}
	}
	setHistory(t, db, "dropped", 0)
	apply(t, db, now, putW("dropped", "after-off", "v", 0, now)) // not recorded
	var total int
	for round := 0; ; round++ {
		n, err := db.PruneHistory(context.Background(), 4)
		if err != nil {
			t.Fatalf("PruneHistory: %v", err)
		}
		if n > 4 {
			t.Errorf("PruneHistory(4) deleted %d", n)
		}
		if n == 0 {
			break
		}
		total += n
		if round > 10 {
			t.Fatal("PruneHistory never done")
		}
	}
	if total != 7+5 {
		t.Errorf("pruned %d changes; want 12 (7 beyond the keep of 3, 5 of a namespace without history)", total)
	}
	cs, err := db.History(context.Background(), "kept", "", 0, 100)
	var got []string
	for _, c := range cs {
		got = append(got, c.After)
	}
	if err != nil || !slices.Equal(got, []string{"9", "8", "7"}) {
		t.Errorf("kept after pruning = %v, %v; want the newest 3: [9 8 7]", got, err)
	}
	var left int
	if err := raw.QueryRow(context.Background(), `SELECT count(*) FROM operational_state_history`).Scan(&left); err != nil || left != 3 {
		t.Errorf("%d changes left in the table, %v; want 3", left, err)
	}
}

// TestHistorySetHistory checks SetHistory's keeps as HistoryKeeps and
// the table show them, that keep 0 stops recording at once, and that a
// negative keep or a namespace text cannot hold is refused.
func TestHistorySetHistory(t *testing.T) {
	db, _, _ := mustOpen(t)
	ctx := context.Background()
	setHistory(t, db, "a", 5)
	setHistory(t, db, "b", 7)
	setHistory(t, db, "a", 9)
	keeps, err := db.HistoryKeeps(ctx)
	if err != nil || len(keeps) != 2 || keeps["a"] != 9 || keeps["b"] != 7 {
		t.Errorf("HistoryKeeps = %v, %v; want map[a:9 b:7]", keeps, err)
	}
	now := localNow()
	apply(t, db, now, putW("b", "k", "1", 0, now))
	setHistory(t, db, "b", 0)
	apply(t, db, now, putW("b", "k", "2", 0, now))
	if cs, _ := db.History(ctx, "b", "k", 0, 10); len(cs) != 1 || cs[0].After != "1" {
		t.Errorf("History after SetHistory(b, 0) = %+v; want only the change before", cs)
	}
	if keeps, _ := db.HistoryKeeps(ctx); len(keeps) != 1 {
		t.Errorf("HistoryKeeps after SetHistory(b, 0) = %v; want only a", keeps)
	}
	if err := db.SetHistory(ctx, "a", -1); err == nil {
		t.Error("SetHistory(a, -1) = nil; want an error")
	}
	if err := db.SetHistory(ctx, "a\x00", 1); !errors.Is(err, pgdb.ErrInvalidText) {
		t.Errorf("SetHistory of a NUL namespace = %v; want ErrInvalidText", err)
	}
}

// TestHistoryRecordGate counts the calls of the record function (the
// server's function statistics, track_functions = pl): a batch of the DB
// whose namespaces keep no history does not fire it at all, a batch with
// one namespace that does fires it for each of its rows, and a plain SQL
// write, which sets nothing, fires it for its row.
func TestHistoryRecordGate(t *testing.T) {
	dsn, raw := server(t)
	ctx := context.Background()
	tracked := pgtest.WithParam(dsn, "track_functions", "pl")
	db, err := pgdb.Open(ctx, tracked, pgdb.Options{})
	if err != nil {
		t.Skipf("track_functions needs a superuser: %v", err)
	}
	defer db.Close()
	setHistory(t, db, "h", 100)
	now := localNow()
	var plain []storage.Write
	for i := range 20 {
		plain = append(plain, putW("plain", fmt.Sprint("k", i), "v", 0, now))
	}
	apply(t, db, now, plain...)
	apply(t, db, now, putW("plain", "k", "v", 0, now), putW("h", "a", "1", 0, now), putW("h", "b", "1", 0, now))
	psql, err := pgx.Connect(ctx, tracked)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := psql.Exec(ctx, `INSERT INTO operational_state VALUES ('plain', 'psql', 'v', now(), NULL)`); err != nil {
		t.Fatal(err)
	}
	// A session reports its counts when it ends (or idle, within seconds).
	psql.Close(ctx)
	db.Close()
	var calls int64
	for deadline := time.Now().Add(10 * time.Second); ; {
		if err := raw.QueryRow(ctx, `SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions
			WHERE schemaname = current_schema() AND funcname = 'operational_state_record'`).Scan(&calls); err != nil {
			t.Fatal(err)
		}
		if calls > 4 || time.Now().After(deadline) {
			break
		}
		if calls == 4 { // and no more a moment later
			time.Sleep(200 * time.Millisecond)
			deadline = time.Now()
			continue
		}
		time.Sleep(50 * time.Millisecond)
	}
	if calls != 4 {
		t.Errorf("the record function ran %d times; want 4 (the batch's 3 rows with a namespace keeping history, psql's 1)", calls)
	}
	var recorded int
	if err := raw.QueryRow(ctx, `SELECT count(*) FROM operational_state_history`).Scan(&recorded); err != nil || recorded != 2 {
		t.Errorf("%d changes recorded, %v; want 2, of h", recorded, err)
	}
}
