package pgdb_test

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/d8da9184/opstate/pgstate/internal/pgdb"
	"github.com/d8da9184/opstate/storage"
)

// TestListen checks what a listener reports of every kind of change: by
// another DB on the schema and by hand (psql's way): inserts, updates,
// deletes, a rename, keys with quotes and control characters, a sweep's
// deletes (Expired), and keys too long for a payload, which arrive as
// namespace-level changes; a namespace too long arrives as a Reset. The
// listener's own DB's changes are not reported, and a DB in another
// schema hears nothing.
func TestListen(t *testing.T) {
	db, dsn, raw := mustOpen(t)
	writer := openDSN(t, dsn, pgdbOptions())
	other, _, otherRaw := mustOpen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l := mustListen(t, ctx, db)
	lo := mustListen(t, ctx, other)

	now := localNow()
	long := strings.Repeat("k", 8000)
	key := func(ns, k string) storage.Key { return storage.Key{Namespace: ns, Key: k} }
	type want struct {
		keys    []storage.Key
		spaces  []string
		expired []storage.Key
		reset   bool
	}
	steps := []struct {
		name string
		do   func()
		want want
	}{
		{"put", func() { apply(t, writer, now, putW("ns", "a\"'\n\x01", "v", 0, now)) }, want{keys: []storage.Key{key("ns", "a\"'\n\x01")}}},
		{"own-put-skipped", func() {
			apply(t, db, now, putW("ns", "own", "v", 0, now))
			rawPut(t, raw, "ns", "marker", "v", 0)
		}, want{keys: []storage.Key{key("ns", "marker")}}},
		{"hand-insert", func() { rawPut(t, raw, "ns", "b", "v", 0) }, want{keys: []storage.Key{key("ns", "b")}}},
		{"hand-update", func() { rawExec(t, raw, `UPDATE operational_state SET value = 'w' WHERE key = 'b'`) }, want{keys: []storage.Key{key("ns", "b")}}},
		{"hand-rename", func() { rawExec(t, raw, `UPDATE operational_state SET key = 'c' WHERE key = 'b'`) }, want{keys: []storage.Key{key("ns", "b"), key("ns", "c")}}},
		{"delete", func() { apply(t, writer, now, storage.Write{Kind: storage.Delete, Namespace: "ns", Key: "c"}) }, want{keys: []storage.Key{key("ns", "c")}}},
		{"sweep", func() {
			rawPut(t, raw, "ns", "dead", "v", -time.Second)
			drain(t, ctx, l, 1) // the insert
			if _, err := writer.DeleteExpired(ctx, now, 10); err != nil {
				t.Fatal(err)
			}
		}, want{keys: []storage.Key{key("ns", "dead")}, expired: []storage.Key{key("ns", "dead")}}},
		{"hand-delete-expired", func() {
			rawPut(t, raw, "ns", "dead2", "v", -time.Second)
			drain(t, ctx, l, 1)
			rawExec(t, raw, `DELETE FROM operational_state WHERE key = 'dead2'`)
		}, want{keys: []storage.Key{key("ns", "dead2")}, expired: []storage.Key{key("ns", "dead2")}}},
		{"long-key", func() { apply(t, writer, now, putW("ns", long, "v", 0, now)) }, want{spaces: []string{"ns"}}},
		{"long-namespace", func() { apply(t, writer, now, putW(long, "k", "v", 0, now)) }, want{reset: true}},
		// The trigger's function names nothing the search_path must
		// find: a session with an empty one (logical replication's apply
		// worker) writes, and notifies.
		{"empty-search-path", func() {
			rawExec(t, raw, `BEGIN; SELECT set_config('search_path', '', true);
				UPDATE `+schemaOf(t, raw)+`.operational_state SET value = 'x' WHERE key = 'marker'; COMMIT`)
		}, want{keys: []storage.Key{key("ns", "marker")}}},
		{"truncate", func() { rawExec(t, raw, `TRUNCATE operational_state`) }, want{reset: true}},
		{"reset-function", func() { rawExec(t, raw, `SELECT operational_state_reset()`) }, want{reset: true}},
		{"reset-function-of-schema", func() {
			rawExec(t, otherRaw, `SELECT operational_state_reset('`+schemaOf(t, raw)+`')`)
		}, want{reset: true}},
	}
	for _, s := range steps {
		s.do()
		got := gather(t, ctx, l, len(s.want.keys)+len(s.want.spaces), s.want.reset)
		var exp []storage.Key
		for k := range got.Expired {
			exp = append(exp, k)
		}
		// A statement's keys come in no particular order.
		slices.SortFunc(got.Keys, cmpKey)
		slices.SortFunc(s.want.keys, cmpKey)
		switch {
		case got.Reset != s.want.reset,
			!slices.Equal(got.Keys, s.want.keys),
			!slices.Equal(got.Namespaces, s.want.spaces),
			!slices.Equal(exp, s.want.expired),
			!got.Foreign:
			t.Errorf("%s: Next = %+v; want %+v", s.name, trimChanges(got), s.want)
		}
	}
	// The other schema's listener hears its own change first, and only it.
	rawPut(t, otherRaw, "theirs", "k", "v", 0)
	if got, err := lo.Next(ctx); err != nil || !slices.Equal(got.Keys, []storage.Key{key("theirs", "k")}) {
		t.Errorf("other schema's Next = %+v, %v; want its own change only", got, err)
	}
}

// schemaOf returns the schema of raw's search_path, quoted.
func schemaOf(t *testing.T, raw rawPool) string {
	t.Helper()
	var s string
	if err := raw.QueryRow(context.Background(), `SELECT quote_ident(current_schema())`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// mustListen starts a listener on db, closed at cleanup.
func mustListen(t *testing.T, ctx context.Context, db *pgdb.DB) storage.Listener {
	t.Helper()
	l, err := db.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func cmpKey(a, b storage.Key) int {
	return strings.Compare(a.Namespace+"\x00"+a.Key, b.Namespace+"\x00"+b.Key)
}

// TestListenBigStatements checks statements of thousands of rows: a batch
// of 3000 Puts (one statement) and a DeleteNamespace of as many keys; the
// listener reports every key.
func TestListenBigStatements(t *testing.T) {
	db, dsn, _ := mustOpen(t)
	writer := openDSN(t, dsn, pgdbOptions())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l := mustListen(t, ctx, db)
	now := localNow()
	const n = 3000
	for _, tc := range []struct {
		name string
		do   func()
	}{
		{"puts", func() {
			var ws []storage.Write
			for i := range n {
				ws = append(ws, putW("ns", fmt.Sprintf("key-%04d", i), "v", 0, now))
			}
			apply(t, writer, now, ws...)
		}},
		{"delete namespace", func() {
			apply(t, writer, now, storage.Write{Kind: storage.DeleteNamespace, Namespace: "ns"})
		}},
	} {
		tc.do()
		seen := map[storage.Key]bool{}
		reports := 0
		for len(seen) < n {
			ch, err := l.Next(ctx)
			if err != nil {
				t.Fatalf("%s: after %d keys: %v", tc.name, len(seen), err)
			}
			reports++
			if ch.Reset || len(ch.Namespaces) != 0 {
				t.Fatalf("%s: report %+v; want keys", tc.name, trimChanges(ch))
			}
			for _, k := range ch.Keys {
				seen[k] = true
			}
		}
		t.Logf("%s: %d keys in %d reports", tc.name, n, reports)
	}
}

// gather calls Next until it has reported n keys and namespaces, or a
// Reset if reset, and returns what it reported, merged.
func gather(t *testing.T, ctx context.Context, l storage.Listener, n int, reset bool) storage.Changes {
	t.Helper()
	var all storage.Changes
	for len(all.Keys)+len(all.Namespaces) < n || reset && !all.Reset {
		ch, err := l.Next(ctx)
		if err != nil {
			t.Fatalf("Next: %v (so far %+v)", err, trimChanges(all))
		}
		all.Reset = all.Reset || ch.Reset
		all.Foreign = all.Foreign || ch.Foreign
		all.Keys = append(all.Keys, ch.Keys...)
		all.Namespaces = append(all.Namespaces, ch.Namespaces...)
		if ch.Expired != nil {
			if all.Expired == nil {
				all.Expired = map[storage.Key]bool{}
			}
			maps.Copy(all.Expired, ch.Expired)
		}
	}
	return all
}

// drain reads n keys' reports and forgets them.
func drain(t *testing.T, ctx context.Context, l storage.Listener, n int) {
	t.Helper()
	gather(t, ctx, l, n, false)
}

func rawExec(t *testing.T, raw rawPool, sql string) {
	t.Helper()
	if _, err := raw.Exec(context.Background(), sql); err != nil {
		t.Fatal(err)
	}
}

// trimChanges shortens a report's long strings for messages.
func trimChanges(c storage.Changes) storage.Changes {
	cut := func(s string) string {
		if len(s) > 40 {
			return s[:40] + "..."
		}
		return s
	}
	out := c
	out.Keys = nil
	for _, k := range c.Keys {
		out.Keys = append(out.Keys, storage.Key{Namespace: cut(k.Namespace), Key: cut(k.Key)})
	}
	out.Namespaces = nil
	for _, ns := range c.Namespaces {
		out.Namespaces = append(out.Namespaces, cut(ns))
	}
	return out
}

// TestListenerNoticesDeadConnection checks the ping: a listener whose
// connection goes silent (its packets dropped, as on a network
// partition) fails within twice the ping interval instead of waiting
// forever.
func TestListenerNoticesDeadConnection(t *testing.T) {
	dsn, _ := server(t)
	var last atomic.Pointer[silencer] // the connection dialed last
	opts := pgdb.WithDial(pgdb.Options{PingInterval: 100 * time.Millisecond}, func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		s := &silencer{Conn: c}
		last.Store(s)
		return s, nil
	})
	db := openDSN(t, dsn, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l := mustListen(t, ctx, db)
	lgate := last.Load() // the listener's connection was dialed last
	errc := make(chan error, 1)
	go func() {
		_, err := l.Next(ctx)
		errc <- err
	}()
	time.Sleep(250 * time.Millisecond) // idle pings answered meanwhile
	select {
	case err := <-errc:
		t.Fatalf("Next returned %v while the connection was alive", err)
	default:
	}
	lgate.silence()
	start := time.Now()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Next returned nil error on a silent connection")
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Next noticed the silent connection after %v; want within about 2 ping intervals (200ms)", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next still waiting 5s after its connection went silent")
	}
}

// silencer is a connection that can go silent: once silenced (quiet, its
// own or shared), what is written to it is dropped, so the server never
// answers, as when a network drops every packet.
type silencer struct {
	net.Conn
	quiet  atomic.Bool
	shared *atomic.Bool
}

func (s *silencer) silence() { s.quiet.Store(true) }

func (s *silencer) Write(p []byte) (int, error) {
	if s.quiet.Load() || s.shared != nil && s.shared.Load() {
		return len(p), nil
	}
	return s.Conn.Write(p)
}

// TestCallTimeout cuts every connection of a DB silently (a partition):
// each call fails after CallTimeout, naming it, instead of waiting for
// TCP to give up.
func TestCallTimeout(t *testing.T) {
	dsn, _ := server(t)
	var quiet atomic.Bool
	var mu sync.Mutex
	var conns []net.Conn
	const limit = 300 * time.Millisecond
	opts := pgdb.WithDial(pgdb.Options{CallTimeout: limit}, func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		return &silencer{Conn: c, shared: &quiet}, nil
	})
	db := openDSN(t, dsn, opts)
	ctx := context.Background()
	now := localNow()
	apply(t, db, now, putW("ns", "k", "v", 0, now))
	quiet.Store(true)
	defer func() {
		// pgx cleans a timed-out connection up in the background, sending
		// a cancel request on a new connection and waiting up to 15s for
		// answers that never come; closing the pool waits for that.
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	calls := []struct {
		name string
		call func() error
	}{
		{"Get", func() error { _, _, err := db.Get(ctx, "ns", "k"); return err }},
		{"List", func() error { _, err := db.List(ctx, "ns", now); return err }},
		{"Namespaces", func() error { _, err := db.Namespaces(ctx, now); return err }},
		{"Apply", func() error { _, err := db.Apply(ctx, now, []storage.Write{putW("ns", "k", "w", 0, now)}); return err }},
		{"DeleteExpired", func() error { _, err := db.DeleteExpired(ctx, now, 10); return err }},
		{"Listen", func() error { _, err := db.Listen(ctx); return err }},
	}
	for _, c := range calls {
		start := time.Now()
		err := c.call()
		d := time.Since(start)
		switch {
		case err == nil:
			t.Errorf("%s on a silent connection succeeded", c.name)
		case d > limit+2*time.Second:
			t.Errorf("%s failed after %v; want about CallTimeout (%v)", c.name, d, limit)
		case !strings.Contains(err.Error(), "CallTimeout") && c.name != "Listen":
			t.Errorf("%s: error %q does not name CallTimeout", c.name, err)
		}
	}
}
