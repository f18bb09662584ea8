package pgdb_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate/persist"
	"github.com/d8da9184/opstate/pgstate/internal/pgdb"
)

// TestListen checks the notifications of every kind of change, by the DB
// and by hand (psql's way, behind its back): inserts, updates, deletes, a
// rename, keys with quotes and control characters, and keys too long for
// a payload, which arrive as namespace-level changes; a namespace too long
// arrives as a change of anything. A DB in another schema hears nothing.
func TestListen(t *testing.T) {
	db, _, raw := mustOpen(t)
	other, _, otherRaw := mustOpen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := db.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(context.Background())
	lo, err := other.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close(context.Background())

	now := localNow()
	long := strings.Repeat("k", 8000)
	key := func(ns, k string) pgdb.Change { return pgdb.Change{Scope: pgdb.ScopeKey, Namespace: ns, Key: k} }
	steps := []struct {
		name string
		do   func()
		want []pgdb.Change
	}{
		{"put", func() { apply(t, db, now, putW("ns", "a\"'\n\x01", "v", 0, now)) }, []pgdb.Change{key("ns", "a\"'\n\x01")}},
		{"hand-insert", func() { rawPut(t, raw, "ns", "b", "v", 0) }, []pgdb.Change{key("ns", "b")}},
		{"hand-update", func() { rawExec(t, raw, `UPDATE operational_state SET value = 'w' WHERE key = 'b'`) }, []pgdb.Change{key("ns", "b")}},
		{"hand-rename", func() { rawExec(t, raw, `UPDATE operational_state SET key = 'c' WHERE key = 'b'`) }, []pgdb.Change{key("ns", "b"), key("ns", "c")}},
		{"delete", func() { apply(t, db, now, &persist.Write{Kind: persist.Delete, Namespace: "ns", Key: "c"}) }, []pgdb.Change{key("ns", "c")}},
		{"long-key", func() { apply(t, db, now, putW("ns", long, "v", 0, now)) }, []pgdb.Change{{Scope: pgdb.ScopeNamespace, Namespace: "ns"}}},
		{"long-namespace", func() { apply(t, db, now, putW(long, "k", "v", 0, now)) }, []pgdb.Change{{Scope: pgdb.ScopeAll}}},
	}
	for _, s := range steps {
		s.do()
		for _, want := range s.want {
			got, err := l.Next(ctx)
			if err != nil {
				t.Fatalf("%s: Next: %v", s.name, err)
			}
			if got != want {
				t.Errorf("%s: Next = %+v; want %+v", s.name, trim(got), trim(want))
			}
		}
	}
	// The other schema's listener hears its own change first, and only it.
	rawPut(t, otherRaw, "theirs", "k", "v", 0)
	if got, err := lo.Next(ctx); err != nil || got != key("theirs", "k") {
		t.Errorf("other schema's Next = %+v, %v; want its own change only", trim(got), err)
	}
}

func rawExec(t *testing.T, raw rawPool, sql string) {
	t.Helper()
	if _, err := raw.Exec(context.Background(), sql); err != nil {
		t.Fatal(err)
	}
}

// trim shortens a Change's long strings for messages.
func trim(c pgdb.Change) pgdb.Change {
	if len(c.Namespace) > 40 {
		c.Namespace = c.Namespace[:40] + "..."
	}
	if len(c.Key) > 40 {
		c.Key = c.Key[:40] + "..."
	}
	return c
}
