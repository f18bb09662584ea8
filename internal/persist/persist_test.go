package persist_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate/internal/persist"
)

func TestGetPut(t *testing.T) {
	db := mustOpen(t, "")
	write(t, db,
		row{"ns", "plain", "v1", 0},
		row{"ns", "future", "v2", t0 + time.Hour.Milliseconds()},
		row{"ns", "expired", "v3", t0 - time.Hour.Milliseconds()},
		row{"ns", "submilli", "v4", t0 + 1500*ms},
		row{"ns", "empty", "", 0},
		row{"other", "plain", "v5", 0},
	)
	tests := []struct {
		ns, key string
		want    *persist.Row
	}{
		{"ns", "plain", &persist.Row{Value: "v1"}},
		{"ns", "future", &persist.Row{Value: "v2", ExpiresAt: t0 + time.Hour.Milliseconds()}},
		// Get returns rows whether they have expired or not.
		{"ns", "expired", &persist.Row{Value: "v3", ExpiresAt: t0 - time.Hour.Milliseconds()}},
		// Expiries are kept to the millisecond.
		{"ns", "submilli", &persist.Row{Value: "v4", ExpiresAt: t0 + 1500*ms}},
		{"ns", "empty", &persist.Row{Value: ""}},
		{"other", "plain", &persist.Row{Value: "v5"}},
		{"ns", "missing", nil},
		{"missing", "plain", nil},
		{"", "", nil},
	}
	for _, tt := range tests {
		checkGet(t, db, tt.ns, tt.key, tt.want)
	}

	// updated_at is the time the row was written, in the stored form.
	var updated string
	if err := rawDB(t, db.Path()).QueryRow(`SELECT updated_at FROM operational_state WHERE namespace = 'ns' AND key = 'plain'`).Scan(&updated); err != nil {
		t.Fatal(err)
	}
	if want := persist.FormatTime(t0); updated != want {
		t.Errorf("updated_at = %q; want %q", updated, want)
	}
}

func TestPutReplaces(t *testing.T) {
	tests := []struct {
		name          string
		first, second row
	}{
		{"value", row{"ns", "k", "old", 0}, row{"ns", "k", "new", 0}},
		{"expiry added", row{"ns", "k", "v", 0}, row{"ns", "k", "v", t0 + ms}},
		{"expiry dropped", row{"ns", "k", "v", t0 + ms}, row{"ns", "k", "v", 0}},
		{"expiry moved back", row{"ns", "k", "v", t0 + time.Hour.Milliseconds()}, row{"ns", "k", "w", t0 - time.Hour.Milliseconds()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := mustOpen(t, "")
			write(t, db, tt.first)
			write(t, db, tt.second)
			checkGet(t, db, "ns", "k", &persist.Row{Value: tt.second.value, ExpiresAt: tt.second.exp})
			var n int
			var exp sql.NullString
			if err := rawDB(t, db.Path()).QueryRow(`SELECT count(*), max(expires_at) FROM operational_state`).Scan(&n, &exp); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Errorf("table holds %d rows; want 1", n)
			}
			if tt.second.exp == 0 && exp.Valid {
				t.Errorf("expires_at = %q; want NULL for no expiry", exp.String)
			}
		})
	}
}

func TestDelete(t *testing.T) {
	db := mustOpen(t, "")
	write(t, db, row{"ns", "a", "1", 0}, row{"ns", "b", "2", 0}, row{"other", "a", "3", 0})
	apply(t, db, t0, deleteW("ns", "a"), deleteW("ns", "missing"))
	apply(t, db, t0, deleteW("nowhere", "a")) // alone, and matching nothing
	checkGet(t, db, "ns", "a", nil)
	checkGet(t, db, "ns", "b", &persist.Row{Value: "2"})
	checkGet(t, db, "other", "a", &persist.Row{Value: "3"})
}

func TestDeleteNamespace(t *testing.T) {
	db := mustOpen(t, "")
	write(t, db,
		row{"ns", "a", "1", 0}, row{"ns", "b", "2", t0 - ms},
		row{"ns2", "a", "3", 0}, row{"n", "s", "4", 0}, row{"NS", "a", "5", 0}, row{"ns%", "a", "6", 0})
	apply(t, db, t0, deleteNamespaceW("ns"), deleteNamespaceW("missing"))
	checkGet(t, db, "ns", "a", nil)
	checkGet(t, db, "ns", "b", nil)
	for _, r := range []row{{"ns2", "a", "3", 0}, {"n", "s", "4", 0}, {"NS", "a", "5", 0}, {"ns%", "a", "6", 0}} {
		checkGet(t, db, r.ns, r.key, &persist.Row{Value: r.value})
	}
}

// TestApplyOrder checks that the writes of a batch take effect in order,
// whether Puts are grouped into one statement or not.
func TestApplyOrder(t *testing.T) {
	tests := []struct {
		name string
		ws   []persist.Write
		want map[string]string // List("ns") afterwards
	}{
		{"empty batch", nil, map[string]string{"seed": "s"}},
		{"last Put wins", []persist.Write{putW("ns", "k", "v1", 0), putW("ns", "k", "v2", 0)}, map[string]string{"seed": "s", "k": "v2"}},
		{"Put Delete Put", []persist.Write{putW("ns", "k", "v1", 0), deleteW("ns", "k"), putW("ns", "k", "v2", 0)}, map[string]string{"seed": "s", "k": "v2"}},
		{"Put then Delete", []persist.Write{putW("ns", "k", "v1", 0), deleteW("ns", "k")}, map[string]string{"seed": "s"}},
		{"Put DeleteNamespace Put", []persist.Write{putW("ns", "a", "1", 0), deleteNamespaceW("ns"), putW("ns", "b", "2", 0)}, map[string]string{"b": "2"}},
		{"Put expired then fresh", []persist.Write{putW("ns", "k", "old", t0-ms), putW("ns", "k", "new", 0)}, map[string]string{"seed": "s", "k": "new"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := mustOpen(t, "")
			write(t, db, row{"ns", "seed", "s", 0})
			apply(t, db, t0, tt.ws...)
			if got := list(t, db, "ns", t0-time.Hour.Milliseconds()); !maps.Equal(got, tt.want) {
				t.Errorf("List after the batch = %q; want %q", got, tt.want)
			}
		})
	}
}

// TestApplyModel applies random batches of every kind of write, some of
// them long enough to need several multi-row statements, and compares the
// table with a reference map after each batch. Expiries are distinct, so
// that which rows a limited sweep takes is determined.
func TestApplyModel(t *testing.T) {
	type entry struct {
		value string
		exp   int64
	}
	db := mustOpen(t, "")
	model := make(map[persist.Key]entry)
	rng := rand.New(rand.NewPCG(11, 12))
	spaces := []string{"a", "b", "c"}
	var stamp int64
	usedExp := make(map[int64]bool)
	for batch := range 60 {
		now := t0 + int64(batch)*time.Second.Milliseconds()
		var ws []persist.Write
		for range rng.IntN(80) {
			k := persist.Key{Namespace: spaces[rng.IntN(len(spaces))], Key: fmt.Sprint("k", rng.IntN(40))}
			switch r := rng.IntN(100); {
			case r < 75:
				stamp++
				var exp int64
				if rng.IntN(2) == 0 {
					// Some already past; all distinct.
					exp = now + (int64(rng.IntN(20))-10)*time.Second.Milliseconds() + stamp*ms
					for usedExp[exp] {
						exp += ms
					}
					usedExp[exp] = true
				}
				v := fmt.Sprint("v", stamp)
				ws = append(ws, putW(k.Namespace, k.Key, v, exp))
				model[k] = entry{v, exp}
			case r < 88:
				ws = append(ws, deleteW(k.Namespace, k.Key))
				delete(model, k)
			case r < 90:
				ws = append(ws, deleteNamespaceW(k.Namespace))
				for mk := range model {
					if mk.Namespace == k.Namespace {
						delete(model, mk)
					}
				}
			default:
				limit := rng.IntN(5)
				var expired []persist.Key
				for mk, e := range model {
					if e.exp != 0 && e.exp/ms <= now/ms {
						expired = append(expired, mk)
					}
				}
				sort.Slice(expired, func(i, j int) bool { return model[expired[i]].exp < model[expired[j]].exp })
				expired = expired[:min(limit, len(expired))]
				for _, mk := range expired {
					delete(model, mk)
				}
				// A sweep runs on its own, after the writes before it.
				apply(t, db, now, ws...)
				ws = nil
				got, err := db.DeleteExpired(t.Context(), now, limit)
				if err != nil {
					t.Fatal(err)
				}
				less := func(a, b persist.Key) int { return strings.Compare(a.Namespace+"\x00"+a.Key, b.Namespace+"\x00"+b.Key) }
				slices.SortFunc(got, less)
				slices.SortFunc(expired, less)
				if !slices.Equal(got, expired) {
					t.Fatalf("batch %d: DeleteExpired swept %v; want %v", batch, got, expired)
				}
			}
		}
		apply(t, db, now, ws...)
		for _, ns := range spaces {
			got := list(t, db, ns, 0)
			want := make(map[string]string)
			for mk, e := range model {
				if mk.Namespace == ns {
					want[mk.Key] = e.value
				}
			}
			if !maps.Equal(got, want) {
				t.Fatalf("batch %d (%d writes): List(%q) = %v; want %v", batch, len(ws), ns, got, want)
			}
		}
	}
	for mk, e := range model {
		checkGet(t, db, mk.Namespace, mk.Key, &persist.Row{Value: e.value, ExpiresAt: e.exp / ms * ms})
	}
}

// TestApplyAtomic checks that a batch that fails leaves nothing of itself
// behind, and that the DB takes batches afterwards.
func TestApplyAtomic(t *testing.T) {
	db := mustOpen(t, "")
	write(t, db, row{"ns", "kept", "v", 0}, row{"ns", "expired", "v", t0 - ms})

	var puts []persist.Write
	for i := range 70 {
		puts = append(puts, putW("ns", fmt.Sprint("new", i), "v", 0))
	}
	bad := persist.Write{Kind: persist.WriteKind(200), Namespace: "ns", Key: "kept"}
	tests := []struct {
		name string
		ws   []persist.Write
	}{
		{"bad write alone", []persist.Write{bad}},
		{"bad write last", append(slices.Clone(puts), deleteW("ns", "kept"), deleteNamespaceW("ns"), bad)},
		{"bad write first", append([]persist.Write{bad}, puts...)},
	}
	for _, tt := range tests {
		if _, err := db.Apply(t.Context(), t0, tt.ws); err == nil {
			t.Errorf("%s: Apply = nil; want an error for an unknown write kind", tt.name)
		}
		if want := map[string]string{"kept": "v"}; !maps.Equal(list(t, db, "ns", t0), want) {
			t.Errorf("%s: List after a failed batch = %q; want %q", tt.name, list(t, db, "ns", t0), want)
		}
		checkGet(t, db, "ns", "expired", &persist.Row{Value: "v", ExpiresAt: t0 - ms})
	}
	apply(t, db, t0, puts...)
	if got := len(list(t, db, "ns", t0)); got != 71 {
		t.Errorf("List after a batch of %d Puts has %d keys; want %d", len(puts), got, 71)
	}

	// A batch on a cancelled context either applies whole or not at all.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := db.Apply(ctx, t0, []persist.Write{deleteW("ns", "kept"), putW("ns", "cancelled", "v", 0)})
	_, kept, _ := db.Get(t.Context(), "ns", "kept")
	_, put, _ := db.Get(t.Context(), "ns", "cancelled")
	if applied := !kept && put; (err == nil) != applied || (err != nil && (!kept || put)) {
		t.Errorf("Apply on a cancelled context = %v, and kept deleted: %v, cancelled put: %v; want all or nothing", err, !kept, put)
	}
}

// TestReadDuringWrite checks that reads see the last commit while another
// connection holds the write lock, without waiting for it.
func TestReadDuringWrite(t *testing.T) {
	db := mustOpen(t, "")
	write(t, db, row{"ns", "k", "old", 0})
	conn, err := rawDB(t, db.Path()).Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(t.Context(), `ROLLBACK`)
	if _, err := conn.ExecContext(t.Context(), `UPDATE operational_state SET value = 'new'`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	got, ok, err := db.Get(ctx, "ns", "k")
	if err != nil || !ok || got.Value != "old" {
		t.Errorf("Get during a write = %+v, %v, %v; want the committed %q", got, ok, err, "old")
	}
	if got := list(t, db, "ns", t0); got["k"] != "old" {
		t.Errorf("List during a write = %v; want k=old", got)
	}
}

func TestBusy(t *testing.T) {
	path := tempPath(t)
	mustOpen(t, path)
	db, err := persist.Open(path, persist.Options{BusyTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := rawDB(t, path).Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	for _, ws := range [][]persist.Write{
		{putW("ns", "k", "v", 0)},
		{putW("ns", "k", "v", 0), deleteW("ns", "other")},
	} {
		if _, err := db.Apply(t.Context(), t0, ws); !errors.Is(err, persist.ErrBusy) {
			t.Errorf("Apply(%d writes) while another connection writes = %v; want ErrBusy", len(ws), err)
		}
	}
	if _, err := conn.ExecContext(t.Context(), `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	apply(t, db, t0, putW("ns", "k", "v", 0))
	checkGet(t, db, "ns", "k", &persist.Row{Value: "v"})
}

func TestList(t *testing.T) {
	db := mustOpen(t, "")
	write(t, db,
		row{"ns", "never", "1", 0},
		row{"ns", "future", "2", t0 + time.Hour.Milliseconds()},
		row{"ns", "next ms", "3", t0 + ms},
		row{"ns", "now", "4", t0},
		row{"ns", "past", "5", t0 - ms},
		row{"ns", "long ago", "6", 1},
		row{"other", "never", "7", 0},
	)
	tests := []struct {
		ns   string
		now  int64
		want map[string]string
	}{
		{"ns", t0, map[string]string{"never": "1", "future": "2", "next ms": "3"}},
		{"ns", t0 - 1, map[string]string{"never": "1", "future": "2", "next ms": "3", "now": "4"}},
		{"ns", t0 + ms - 1, map[string]string{"never": "1", "future": "2", "next ms": "3"}},
		{"ns", t0 + time.Hour.Milliseconds(), map[string]string{"never": "1"}},
		{"ns", 2, map[string]string{"never": "1", "future": "2", "next ms": "3", "now": "4", "past": "5"}},
		{"other", t0, map[string]string{"never": "7"}},
		{"missing", t0, map[string]string{}},
	}
	for _, tt := range tests {
		if got := list(t, db, tt.ns, tt.now); !maps.Equal(got, tt.want) {
			t.Errorf("List(%q, now=t0%+dns) = %v; want %v", tt.ns, tt.now-t0, got, tt.want)
		}
	}
}

func TestNamespaces(t *testing.T) {
	db := mustOpen(t, "")
	write(t, db,
		row{"b", "1", "", 0}, row{"b", "2", "", t0 + ms}, row{"b", "3", "", t0},
		row{"a", "1", "", t0 + time.Hour.Milliseconds()},
		row{"expired", "1", "", t0 - ms}, row{"expired", "2", "", t0},
		row{"", "1", "", 0},
		row{"c", "1", "", 0}, row{"c", "2", "", 0}, row{"c", "3", "", 0},
	)
	tests := []struct {
		now  int64
		want []persist.NamespaceCount
	}{
		{t0, []persist.NamespaceCount{{Namespace: "", Live: 1}, {Namespace: "a", Live: 1}, {Namespace: "b", Live: 2}, {Namespace: "c", Live: 3}}},
		{t0 - 1, []persist.NamespaceCount{{Namespace: "", Live: 1}, {Namespace: "a", Live: 1}, {Namespace: "b", Live: 3}, {Namespace: "c", Live: 3}, {Namespace: "expired", Live: 1}}},
		{t0 + ms, []persist.NamespaceCount{{Namespace: "", Live: 1}, {Namespace: "a", Live: 1}, {Namespace: "b", Live: 1}, {Namespace: "c", Live: 3}}},
		{t0 + 2*time.Hour.Milliseconds(), []persist.NamespaceCount{{Namespace: "", Live: 1}, {Namespace: "b", Live: 1}, {Namespace: "c", Live: 3}}},
	}
	for _, tt := range tests {
		if got := namespaces(t, db, tt.now); !slices.Equal(got, tt.want) {
			t.Errorf("Namespaces(now=t0%+dns) = %v; want %v", tt.now-t0, got, tt.want)
		}
	}
	// Each namespace's count is the size of its List.
	for _, nc := range namespaces(t, db, t0) {
		if n := len(list(t, db, nc.Namespace, t0)); n != nc.Live {
			t.Errorf("Namespaces counts %d live keys in %q; List returns %d", nc.Live, nc.Namespace, n)
		}
	}
}

// awkward are names and values that must reach SQLite as parameters,
// never as SQL text.
var awkward = []string{
	"'; DROP TABLE operational_state; --",
	"\"; DROP TABLE operational_state; --",
	"'", "''", "\"", "`", ";", "--", "/*", "*/", "\\", "%", "_", "?", "?1", ":name", "@p", "$1",
	"a\x00b", "\x00", "line\nbreak", "tab\t", "ünï©ødé ✓", "", " ", "NULL", "null",
	"') ON CONFLICT DO NOTHING; --",
	"x' OR '1'='1",
}

func TestParameters(t *testing.T) {
	db := mustOpen(t, "")
	var rows []row
	for i, s := range awkward {
		rows = append(rows, row{s, s, "value " + s, 0}, row{"ns", s, s, t0 + int64(i+1)*ms})
	}
	write(t, db, rows...)

	for i, s := range awkward {
		checkGet(t, db, s, s, &persist.Row{Value: "value " + s})
		checkGet(t, db, "ns", s, &persist.Row{Value: s, ExpiresAt: t0 + int64(i+1)*ms})
		got := list(t, db, s, t0)
		want := map[string]string{s: "value " + s}
		if !maps.Equal(got, want) {
			t.Errorf("List(%q) = %q; want %q", s, got, want)
		}
	}
	nsList := list(t, db, "ns", t0)
	for _, s := range awkward {
		if nsList[s] != s {
			t.Errorf("List(%q)[%q] = %q; want %q", "ns", s, nsList[s], s)
		}
	}
	counts := namespaces(t, db, t0)
	if len(counts) != len(awkward)+1 {
		t.Errorf("Namespaces() returns %d namespaces; want %d", len(counts), len(awkward)+1)
	}

	apply(t, db, t0, deleteW("ns", awkward[0]), deleteNamespaceW(awkward[0]))
	checkGet(t, db, awkward[0], awkward[0], nil)
	checkGet(t, db, "ns", awkward[0], nil)
	for _, s := range awkward[1:] {
		checkGet(t, db, s, s, &persist.Row{Value: "value " + s})
	}

	var tables int
	if err := rawDB(t, db.Path()).QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'operational_state'`).Scan(&tables); err != nil || tables != 1 {
		t.Errorf("operational_state tables = %d, %v; want 1", tables, err)
	}
	var n int
	if err := rawDB(t, db.Path()).QueryRow(`SELECT count(*) FROM operational_state`).Scan(&n); err != nil || n != 2*len(awkward)-2 {
		t.Errorf("rows = %d, %v; want %d", n, err, 2*len(awkward)-2)
	}
}

// TestSyncMode checks that each durability reaches the write connection:
// synchronous=NORMAL (1) by default, FULL (2) with SyncFull.
func TestSyncMode(t *testing.T) {
	for _, c := range []struct {
		sync persist.Sync
		want int
	}{{persist.SyncNormal, 1}, {persist.SyncFull, 2}} {
		db, err := persist.Open(tempPath(t), persist.Options{Sync: c.sync})
		if err != nil {
			t.Fatal(err)
		}
		got, err := db.Synchronous()
		if err != nil || got != c.want {
			t.Errorf("Open(Sync: %d): PRAGMA synchronous = %d, %v; want %d", c.sync, got, err, c.want)
		}
		db.Close()
	}
}
