package pgstate_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/pgstate"
	"github.com/d8da9184/opstate/pgstate/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// staleness runs, until fault has returned and settle has passed, a
// writer on w that sets ns/key to 1, 2, 3... and a reader on r that Gets
// it in a loop, and returns the worst staleness of r's reads: for a read
// that returned n, how long before the read began n+1 had been
// acknowledged (0 when it had not). Failed writes and reads are counted,
// not fatal: fault may take the server away.
func staleness(t *testing.T, r, w *opstate.Store, settle time.Duration, fault func()) (worst time.Duration, writeErrs, readErrs int) {
	t.Helper()
	const ns, key = "stale", "k"
	set(t, w, ns, key, "0")
	var mu sync.Mutex
	var worstAt, faultAt time.Time
	acked := []time.Time{time.Now()} // acked[n]: when n was acknowledged
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // writer
		defer wg.Done()
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			for w.Set(ns, key, strconv.Itoa(n)) != nil {
				mu.Lock()
				writeErrs++
				mu.Unlock()
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
			mu.Lock()
			acked = append(acked, time.Now())
			mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	}()
	go func() { // reader
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			v, err := r.Get(ns, key)
			if err != nil {
				mu.Lock()
				readErrs++
				mu.Unlock()
				time.Sleep(time.Millisecond)
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Errorf("read %q", v)
				return
			}
			mu.Lock()
			if n+1 < len(acked) && acked[n+1].Before(start) {
				if d := start.Sub(acked[n+1]); d > worst {
					worst = d
					worstAt = start
				}
			}
			mu.Unlock()
		}
	}()
	time.Sleep(100 * time.Millisecond)
	faultAt = time.Now()
	fault()
	time.Sleep(settle)
	close(stop)
	wg.Wait()
	if !worstAt.IsZero() {
		t.Logf("the stalest read began %v after the fault", worstAt.Sub(faultAt))
	}
	return worst, writeErrs, readErrs
}

// TestListenerTerminated kills the backend of a Store's listener with
// pg_terminate_backend while another Store writes a key it reads in a
// loop, and keeps the Store from connecting again for a second (its
// connections pass a proxy that refuses new ones meanwhile, as a network
// in trouble might): no read is staler than twice the ping interval, none
// fails (they read the server over the pool's open connections), the
// Store listens again by itself once it can, its cache emptied once, and
// then serves from its cache again, still coherent.
func TestListenerTerminated(t *testing.T) {
	c := pgtest.NewCluster(t)
	proxy := pgtest.NewProxy(t, "127.0.0.1:"+strconv.Itoa(c.Port))
	app := "opstate-reader"
	const ping = 200 * time.Millisecond
	r := open(t, pgtest.WithParam(proxy.Via(c), "application_name", app), opstate.Options{SyncInterval: ping})
	w := open(t, c.DSN, opstate.Options{})
	admin, err := pgx.Connect(context.Background(), c.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	flushes := r.Stats().Flushes
	worst, _, readErrs := staleness(t, r, w, 1500*time.Millisecond, func() {
		proxy.Refuse(true)
		var killed int
		// The listener's connection is the one whose last statement was
		// its LISTEN or a check; the pool's run the Store's queries.
		err := admin.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = $1 AND (query LIKE 'LISTEN %' OR query LIKE '-- opstate listener%')`, app).Scan(&killed)
		if err != nil || killed != 1 {
			t.Errorf("terminated %d listener backends, %v; want 1", killed, err)
		}
		go func() {
			time.Sleep(time.Second)
			proxy.Refuse(false)
		}()
	})
	t.Logf("worst staleness %v, %d failed reads", worst, readErrs)
	if worst > 2*ping {
		t.Errorf("a read was %v stale; want at most 2 ping intervals (%v)", worst, 2*ping)
	}
	if readErrs > 0 {
		t.Errorf("%d reads failed while only the listener was down; want 0 (they read the server)", readErrs)
	}
	// The proxy lets connections through again a second after the fault;
	// on a loaded machine the listener may be back only after the
	// staleness run's end.
	eventually(t, 10*time.Second, "r listens again", func() bool { return r.Stats().Flushes > flushes })
	if d := r.Stats().Flushes - flushes; d != 1 {
		t.Errorf("cache emptied %d times; want once, when the listener was back", d)
	}
	if n := r.Stats().StreamOutages; n != 1 {
		t.Errorf("Stats().StreamOutages = %d after one terminated listener; want 1", n)
	}
	// Back to serving from the cache, and to hearing w's writes.
	set(t, w, "ns", "k", "before")
	eventually(t, 2*time.Second, "r serves w's write", func() bool { return get(t, r, "ns", "k") == "before" })
	// A Get that loads the key before w's notification arrives is
	// followed by a miss; once it has, Gets hit (in bypass, none would).
	eventually(t, time.Second, "r serves from its cache again", func() bool {
		h := r.Stats().Hits
		get(t, r, "ns", "k")
		return r.Stats().Hits > h
	})
	set(t, w, "ns", "k", "after")
	eventually(t, 2*time.Second, "r serves w's write after the listener came back", func() bool { return get(t, r, "ns", "k") == "after" })
}

// TestServerRestart restarts PostgreSQL (pg_ctl restart -m fast) under
// four writers and a reader on another Store: writes during the outage
// fail with an error instead of hanging, no acknowledged write is lost,
// and both Stores recover by themselves: writes succeed again and the
// reader's cache converges to what the server holds.
func TestServerRestart(t *testing.T) {
	c := pgtest.NewCluster(t)
	w := open(t, c.DSN, opstate.Options{SyncInterval: 200 * time.Millisecond})
	r := open(t, c.DSN, opstate.Options{SyncInterval: 200 * time.Millisecond})
	const writers = 4
	var mu sync.Mutex
	lastAcked := make([]int, writers)
	attempted := make([]int, writers)
	failed := 0
	var slowest time.Duration
	restarted := make(chan struct{})
	afterRestart := make([]int, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := "w" + strconv.Itoa(i)
			deadline := time.Now().Add(30 * time.Second)
			for n := 1; time.Now().Before(deadline); n++ {
				mu.Lock()
				attempted[i] = n
				mu.Unlock()
				start := time.Now()
				err := w.Set("restart", key, strconv.Itoa(n))
				d := time.Since(start)
				mu.Lock()
				slowest = max(slowest, d)
				if err != nil {
					failed++
				} else {
					lastAcked[i] = n
				}
				mu.Unlock()
				select {
				case <-restarted:
					if err == nil {
						if afterRestart[i]++; afterRestart[i] >= 20 {
							return
						}
					}
				default:
				}
				if err != nil {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	c.Restart()
	close(restarted)
	wg.Wait()
	t.Logf("%d writes failed; slowest write %v", failed, slowest)
	for i, n := range afterRestart {
		if n < 20 {
			t.Errorf("writer %d: %d successful writes after the restart; want 20 (the Store did not recover)", i, n)
		}
	}
	if slowest > 15*time.Second {
		t.Errorf("a write took %v during the outage; want it to fail instead of hanging", slowest)
	}
	// What the server holds: at least the last acknowledged value.
	conn, err := pgx.Connect(context.Background(), c.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for i := range writers {
		key := "w" + strconv.Itoa(i)
		var v string
		if err := conn.QueryRow(context.Background(), `SELECT value FROM operational_state WHERE namespace = 'restart' AND key = $1`, key).Scan(&v); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		n, _ := strconv.Atoi(v)
		if n < lastAcked[i] || n > attempted[i] {
			t.Errorf("%s holds %d; want between the last acknowledged %d and the last attempted %d", key, n, lastAcked[i], attempted[i])
		}
		eventually(t, 5*time.Second, "reader converges on "+key, func() bool {
			got, err := r.Get("restart", key)
			return err == nil && got == v
		})
		if got, err := w.Get("restart", key); err != nil || got != v {
			t.Errorf("writer's Get(%s) = %q, %v; want %q", key, got, err, v)
		}
	}
}

// TestOutage stops the server under two Stores that cache a key: by
// default reads then fail (they bypass the cache, and the server is
// gone), while a Store with ServeStaleOnOutage goes on serving its cached
// value; writes fail on both; both report Stale, and their watchers get
// OpStale. Once the server is back, both serve others' writes again, are
// no longer Stale, and their watchers get the OpReset that ends it.
func TestOutage(t *testing.T) {
	c := pgtest.NewCluster(t)
	const ping = 200 * time.Millisecond
	strict := open(t, c.DSN, opstate.Options{SyncInterval: ping})
	stale := open(t, c.DSN, opstate.Options{SyncInterval: ping, ServeStaleOnOutage: true})
	// stale hears strict's write before it caches the key: a notification
	// arriving after would drop it again.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	evs, err := stale.Watch(ctx, "ns")
	if err != nil {
		t.Fatal(err)
	}
	set(t, strict, "ns", "k", "v1")
	select {
	case <-evs:
	case <-ctx.Done():
		t.Fatal("no event of strict's write")
	}
	for _, s := range []*opstate.Store{strict, stale} {
		eventually(t, 2*time.Second, "cached v1", func() bool { return get(t, s, "ns", "k") == "v1" })
	}
	strictEvs, err := strict.Watch(ctx, "ns")
	if err != nil {
		t.Fatal(err)
	}
	if strict.Stale() || stale.Stale() {
		t.Fatal("Stale() before the outage")
	}
	c.Stop()
	// Both notice at once (the server closes the listener's connection).
	for name, ch := range map[string]<-chan opstate.Event{"strict": strictEvs, "stale": evs} {
		select {
		case ev := <-ch:
			if ev.Op != opstate.OpStale || ev.Namespace != "ns" || ev.Key != "" {
				t.Errorf("%s Store's watcher got %+v at the outage; want OpStale of ns", name, ev)
			}
		case <-ctx.Done():
			t.Fatalf("%s Store's watcher got no OpStale", name)
		}
	}
	if !strict.Stale() || !stale.Stale() {
		t.Errorf("Stale() = %v, %v during the outage; want true, true", strict.Stale(), stale.Stale())
	}
	eventually(t, 4*ping, "strict Store's reads fail with the server down", func() bool {
		_, err := strict.Get("ns", "k")
		return err != nil
	})
	for range 10 {
		if v, err := stale.Get("ns", "k"); err != nil || v != "v1" {
			t.Fatalf("ServeStaleOnOutage Store's Get = %q, %v; want the cached v1", v, err)
		}
	}
	if err := stale.Set("ns", "k", "lost"); err == nil {
		t.Error("Set with the server down succeeded")
	}
	if err := strict.Set("ns", "k", "lost"); err == nil {
		t.Error("Set with the server down succeeded")
	}
	c.Start()
	for name, ch := range map[string]<-chan opstate.Event{"strict": strictEvs, "stale": evs} {
		select {
		case ev := <-ch:
			if ev.Op != opstate.OpReset {
				t.Errorf("%s Store's watcher got %+v after the outage; want OpReset", name, ev)
			}
		case <-ctx.Done():
			t.Fatalf("%s Store's watcher got no OpReset after the outage", name)
		}
	}
	if strict.Stale() || stale.Stale() {
		t.Errorf("Stale() = %v, %v after the outage; want false, false", strict.Stale(), stale.Stale())
	}
	for name, s := range map[string]*opstate.Store{"strict": strict, "stale": stale} {
		if n := s.Stats().StreamOutages; n != 1 {
			t.Errorf("%s Store's Stats().StreamOutages = %d after one outage; want 1", name, n)
		}
	}
	w := open(t, c.DSN, opstate.Options{})
	set(t, w, "ns", "k", "v2")
	for _, s := range []*opstate.Store{strict, stale} {
		eventually(t, 5*time.Second, "serves v2 after the outage", func() bool {
			v, err := s.Get("ns", "k")
			return err == nil && v == "v2"
		})
	}
	// The stale Store caches again and hears writes.
	set(t, w, "ns", "k", "v3")
	eventually(t, 2*time.Second, "stale Store serves v3", func() bool { return get(t, stale, "ns", "k") == "v3" })
}

// TestOpenErrors checks Open's errors: a server that is down, a refused
// password and malformed connection strings each give an error naming the
// cause, quickly, and none prints the password.
func TestOpenErrors(t *testing.T) {
	c := pgtest.NewCluster(t)
	const secret = "hunter2-wrong-secret"
	down := pgtest.NewCluster(t)
	down.Stop()
	cases := []struct {
		name, dsn string
		want      string // in the message
	}{
		{"server down", strings.Replace(down.DSN, down.Password, secret, 1), "connect"},
		{"wrong password", strings.Replace(c.DSN, c.Password, secret, 1), "password authentication failed"},
		{"unknown user", "postgres://nobody:" + secret + "@127.0.0.1:" + strconv.Itoa(c.Port) + "/postgres?sslmode=disable", "password authentication failed"},
		{"unknown database", strings.Replace(c.DSN, "/postgres?", "/nosuchdb?", 1), "does not exist"},
		{"bad URL", "postgres://u:" + secret + "@127.0.0.1:notaport/db", "cannot parse"},
		{"bad option", "postgres://u:" + secret + "@127.0.0.1/db?sslmode=bogus", "sslmode"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			s, err := pgstate.Open(ctx, tc.dsn, opstate.Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not name the cause (%q)", msg, tc.want)
			}
			if strings.Contains(msg, secret) {
				t.Errorf("error %q prints the password", msg)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Open took %v to fail", d)
			}
		})
	}
}

// TestBackupUnsupported checks that Backup, which only SQLite has, says so.
func TestBackupUnsupported(t *testing.T) {
	s := open(t, pgtest.Schema(t), opstate.Options{})
	err := s.Backup(context.Background(), t.TempDir()+"/copy.db")
	if !errors.Is(err, opstate.ErrUnsupported) || !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Backup = %v; want ErrUnsupported", err)
	}
}
