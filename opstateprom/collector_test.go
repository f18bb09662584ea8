package opstateprom_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/internal/cache"
	"github.com/d8da9184/opstate/opstateprom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	_ "modernc.org/sqlite"
)

// clock is a settable time source for Options.Clock.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 3, 7, 10, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// mustOpen opens a store at path with opts and closes it at the end of the
// test.
func mustOpen(t testing.TB, path string, opts opstate.Options) *opstate.Store {
	t.Helper()
	s, err := opstate.Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%q) = %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close(%q) = %v", path, err)
		}
	})
	return s
}

func mustSet(t testing.TB, s *opstate.Store, ns, key, value string) {
	t.Helper()
	if err := s.Set(ns, key, value); err != nil {
		t.Fatalf("Set(%q, %q) = %v", ns, key, err)
	}
}

func wantGet(t testing.TB, s *opstate.Store, ns, key, want string) {
	t.Helper()
	if got, err := s.Get(ns, key); got != want || err != nil {
		t.Fatalf("Get(%q, %q) = %.40q, %v; want %.40q, nil", ns, key, got, err, want)
	}
}

// mustExec runs a statement on the store's file through plain database/sql,
// as another program would.
func mustExec(t testing.TB, db *sql.DB, query string) {
	t.Helper()
	if _, err := db.Exec(query); err != nil {
		t.Fatalf("Exec(%q) = %v", query, err)
	}
}

// nextEvent returns the next event of a watch.
func nextEvent(t testing.TB, ch <-chan opstate.Event) opstate.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed; want an event")
		}
		return ev
	case <-time.After(10 * time.Second):
	}
	t.Fatal("no event within 10s")
	return opstate.Event{}
}

// endWatch cancels a watch and waits for its channel to close: once it
// has, every event it delivered is counted in Stats.WatchResets.
func endWatch(cancel context.CancelFunc, ch <-chan opstate.Event) {
	cancel()
	for range ch {
	}
}

// namespaceOverhead is what the cache charges a namespace that holds
// entries, beside its name (cache/evict.go).
const namespaceOverhead = 192

// entryCost is what the cache charges an entry (cache.EntryOverhead).
func entryCost(key, value string) int64 { return int64(len(key)+len(value)) + cache.EntryOverhead }

// Room for three entries of namespace "ev" holding bigValue, beside its
// name: the fourth evicts the first.
var (
	bigValue  = strings.Repeat("x", 1000)
	evBudget  = int64(len("ev")+namespaceOverhead) + 3*entryCost("k0", bigValue) + 63
	evEntries = int64(len("ev")+namespaceOverhead) + 3*entryCost("k0", bigValue)
)

// expositionHead is the exposition text of every metric but the cache's
// two gauges, with the values TestCollectorMirrorsStats's operations
// give them; %s is the store label.
const expositionHead = `
# HELP opstate_hits_total Gets and Lookups answered from the cache, negative entries included.
# TYPE opstate_hits_total counter
opstate_hits_total{store="%[1]s"} 7
# HELP opstate_misses_total Gets and Lookups that read storage (SQLite or PostgreSQL).
# TYPE opstate_misses_total counter
opstate_misses_total{store="%[1]s"} 4
# HELP opstate_evictions_total Cache entries dropped to stay within Options.CacheBytes.
# TYPE opstate_evictions_total counter
opstate_evictions_total{store="%[1]s"} 5
# HELP opstate_invalidations_total Cache entries dropped because another connection changed them.
# TYPE opstate_invalidations_total counter
opstate_invalidations_total{store="%[1]s"} 3
# HELP opstate_flushes_total Drops of the whole cache (a foreign change not pinned down, a failed check, the change stream back after an outage).
# TYPE opstate_flushes_total counter
opstate_flushes_total{store="%[1]s"} 1
# HELP opstate_writes_total Writes committed or failed (requests given to group commit).
# TYPE opstate_writes_total counter
opstate_writes_total{store="%[1]s"} 26
# HELP opstate_commits_total Write transactions; opstate_writes_total / opstate_commits_total is the mean batch.
# TYPE opstate_commits_total counter
opstate_commits_total{store="%[1]s"} 26
# HELP opstate_write_errors_total Writes that returned an error, of those counted in opstate_writes_total.
# TYPE opstate_write_errors_total counter
opstate_write_errors_total{store="%[1]s"} 8
# HELP opstate_expired_total Expired rows deleted by sweeps (DeleteExpired and the background sweeper).
# TYPE opstate_expired_total counter
opstate_expired_total{store="%[1]s"} 6
# HELP opstate_watch_resets_total OpReset events sent to watchers.
# TYPE opstate_watch_resets_total counter
opstate_watch_resets_total{store="%[1]s"} 2
# HELP opstate_stream_outages_total Failures of the change stream of a backend that pushes changes (PostgreSQL's LISTEN); always 0 on SQLite.
# TYPE opstate_stream_outages_total counter
opstate_stream_outages_total{store="%[1]s"} 0
`

// expositionCache is the exposition text of the cache's gauges: store
// label, entries, bytes.
const expositionCache = `
# HELP opstate_cache_entries Entries cached now, negative ones included.
# TYPE opstate_cache_entries gauge
opstate_cache_entries{store="%s"} %d
# HELP opstate_cache_bytes Bytes the cache accounts against Options.CacheBytes now.
# TYPE opstate_cache_bytes gauge
opstate_cache_bytes{store="%[1]s"} %[3]d
`

// TestCollectorMirrorsStats checks the exposition text of every metric,
// names, help, types, the store label and values, after operations that
// give each counter a known value, worked out from the operations (not
// read from Stats) and its own but for Writes and Commits (only writes
// racing each other share a commit), so that two metrics swapped show;
// then that the collector of a closed Store still scrapes, its counters
// kept and its cache at 0.
func TestCollectorMirrorsStats(t *testing.T) {
	const ns = "flags"
	clk := newClock()
	path := filepath.Join(t.TempDir(), "state.db")
	// The file, and the trigger that refuses writes 10-17, are made
	// before the Store opens it: a schema change flushes a Store's cache.
	pre, err := opstate.Open(path, opstate.Options{SweepInterval: -1, SyncInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	pre.Close()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustExec(t, db, `CREATE TRIGGER refuse_poison BEFORE INSERT ON operational_state
		WHEN NEW.key = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned key'); END`)
	// No background sweeps; the default SyncInterval, so that the Store
	// notices what the plain SQL connection below does to the file.
	s, err := opstate.Open(path, opstate.Options{SweepInterval: -1, Clock: clk.Now, CacheBytes: evBudget})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	watched, err := s.Watch(wctx, "watched")
	if err != nil {
		t.Fatal(err)
	}

	// Writes 1-3; hits 1-6; misses 1-4 and hit 7 (a negative entry).
	for _, k := range []string{"a", "b", "c"} {
		mustSet(t, s, ns, k, "on")
	}
	for _, k := range []string{"a", "a", "a", "a", "b", "c"} {
		wantGet(t, s, ns, k, "on")
	}
	for i := range 4 {
		wantGet(t, s, ns, fmt.Sprint("absent", i), "")
	}
	wantGet(t, s, ns, "absent0", "")

	// Writes 4-9, six rows expired and swept.
	for i := range 6 {
		if err := s.SetWithTTL(ns, fmt.Sprint("t", i), "v", time.Second); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(2 * time.Second)
	if n, err := s.DeleteExpired(context.Background()); n != 6 || err != nil {
		t.Fatalf("DeleteExpired = %d, %v; want 6, nil", n, err)
	}

	// Writes 10-17, refused by SQLite (the trigger refuse_poison): eight
	// write errors.
	for range 8 {
		if err := s.Set(ns, "poison", "x"); err == nil {
			t.Fatal("Set(poison) = nil; want the trigger's error")
		}
	}

	// Another connection changes a, b and c, all three cached: three
	// invalidations, done once their events arrive.
	fctx, fcancel := context.WithCancel(context.Background())
	defer fcancel()
	flags, err := s.Watch(fctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, `UPDATE operational_state SET value = 'off' WHERE namespace = 'flags' AND key IN ('a', 'b', 'c')`)
	for range 3 {
		if ev := nextEvent(t, flags); ev.Op != opstate.OpSet || ev.Value != "off" {
			t.Fatalf("event = %+v; want an OpSet to %q", ev, "off")
		}
	}
	endWatch(fcancel, flags)

	// Another connection cuts the change log back: the Store cannot say
	// what changed, flushes its cache and resets its watcher (reset 1).
	// Then write 18, DeleteNamespace of the watched namespace (reset 2).
	mustExec(t, db, `DELETE FROM operational_state_changes`)
	if ev := nextEvent(t, watched); ev.Op != opstate.OpReset {
		t.Fatalf("event after the log was cut = %+v; want an OpReset", ev)
	}
	if err := s.DeleteNamespace("watched"); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, watched); ev.Op != opstate.OpReset {
		t.Fatalf("event after DeleteNamespace = %+v; want an OpReset", ev)
	}
	endWatch(wcancel, watched)

	// Writes 19-26 into the flushed cache, which holds three of them: five
	// evictions, k5 to k7 left.
	for i := range 8 {
		mustSet(t, s, "ev", fmt.Sprint("k", i), bigValue)
	}

	want := fmt.Sprintf(expositionHead, "state") + fmt.Sprintf(expositionCache, "state", 3, evEntries)
	c := opstateprom.NewCollector(s, "state")
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Errorf("before Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	want = fmt.Sprintf(expositionHead, "state") + fmt.Sprintf(expositionCache, "state", 0, 0)
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Errorf("after Close: %v", err)
	}
}

// TestCollectorLint checks that the metrics pass client_golang's linter
// (promlint: counters end in _total, base units, help on every metric,
// snake_case names).
func TestCollectorLint(t *testing.T) {
	s := mustOpen(t, ":memory:", opstate.Options{})
	mustSet(t, s, "flags", "dark_mode", "on")
	problems, err := testutil.CollectAndLint(opstateprom.NewCollector(s, "state"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestStoresSideBySide checks that the collectors of two Stores register
// in one registry and that each metric is reported once per Store, with
// that Store's label and its own counts.
func TestStoresSideBySide(t *testing.T) {
	a := mustOpen(t, ":memory:", opstate.Options{})
	b := mustOpen(t, ":memory:", opstate.Options{})
	mustSet(t, a, "flags", "x", "on")
	for _, k := range []string{"x", "y"} {
		mustSet(t, b, "flags", k, "on")
	}
	reg := prometheus.NewPedanticRegistry()
	for _, c := range []prometheus.Collector{opstateprom.NewCollector(a, "a"), opstateprom.NewCollector(b, "b")} {
		if err := reg.Register(c); err != nil {
			t.Fatalf("Register = %v", err)
		}
	}
	want := `
# HELP opstate_writes_total Writes committed or failed (requests given to group commit).
# TYPE opstate_writes_total counter
opstate_writes_total{store="a"} 1
opstate_writes_total{store="b"} 2
# HELP opstate_cache_entries Entries cached now, negative ones included.
# TYPE opstate_cache_entries gauge
opstate_cache_entries{store="a"} 1
opstate_cache_entries{store="b"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "opstate_writes_total", "opstate_cache_entries"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg); n != 2*reflect.TypeFor[opstate.Stats]().NumField() || err != nil {
		t.Errorf("GatherAndCount = %d, %v; want %d metrics, nil", n, err, 2*reflect.TypeFor[opstate.Stats]().NumField())
	}
}

// TestRegisterNames checks what a registry makes of a second collector:
// another name registers beside the first; the same name, even for
// another Store, is refused with AlreadyRegisteredError; a name that is
// not UTF-8 is refused for itself.
func TestRegisterNames(t *testing.T) {
	for _, tt := range []struct {
		name    string
		second  string
		already bool // want AlreadyRegisteredError
		fails   bool // want an error
	}{
		{name: "another name", second: "other"},
		{name: "same name", second: "state", already: true, fails: true},
		{name: "not UTF-8", second: "\xff", fails: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			if err := reg.Register(opstateprom.NewCollector(mustOpen(t, ":memory:", opstate.Options{}), "state")); err != nil {
				t.Fatalf("first Register = %v", err)
			}
			err := reg.Register(opstateprom.NewCollector(mustOpen(t, ":memory:", opstate.Options{}), tt.second))
			var are prometheus.AlreadyRegisteredError
			if got := errors.As(err, &are); got != tt.already || (err != nil) != tt.fails {
				t.Errorf("second Register(%q) = %v; want an error %v, AlreadyRegisteredError %v", tt.second, err, tt.fails, tt.already)
			}
			if _, err := reg.Gather(); err != nil {
				t.Errorf("Gather = %v", err)
			}
		})
	}
}

// TestScrapeDuringWrites scrapes over and over while goroutines write and
// read: with -race, collecting must be free of data races with the
// Store's operations; no counter may go down from one scrape to the next;
// and the scrape after they finish counts every write and cached Get.
func TestScrapeDuringWrites(t *testing.T) {
	const (
		goroutines = 8
		rounds     = 50
	)
	s := mustOpen(t, filepath.Join(t.TempDir(), "state.db"), opstate.Options{SweepInterval: -1})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(opstateprom.NewCollector(s, "state"))

	stop := make(chan struct{})
	scraped := make(chan error)
	go func() {
		last := map[string]float64{}
		for scrapes := 0; ; scrapes++ {
			select {
			case <-stop:
				if scrapes == 0 {
					scraped <- errors.New("no scrape ran during the writes")
				}
				close(scraped)
				return
			default:
			}
			got, err := gather(reg)
			if err != nil {
				scraped <- err
				continue
			}
			for name, v := range got {
				if strings.HasSuffix(name, "_total") && v < last[name] {
					scraped <- fmt.Errorf("%s = %v after %v: a counter went down", name, v, last[name])
				}
			}
			last = got
		}
	}()
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range rounds {
				k := fmt.Sprint(g, "-", i)
				if err := s.Set("ns", k, "v"); err != nil {
					t.Errorf("Set = %v", err)
					return
				}
				if v, err := s.Get("ns", k); v != "v" || err != nil {
					t.Errorf("Get(%q) = %q, %v; want %q, nil", k, v, err, "v")
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	for err := range scraped {
		t.Error(err)
	}
	got, err := gather(reg)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		"opstate_writes_total":       goroutines * rounds,
		"opstate_hits_total":         goroutines * rounds,
		"opstate_misses_total":       0,
		"opstate_write_errors_total": 0,
		"opstate_cache_entries":      goroutines * rounds,
	} {
		if got[name] != want {
			t.Errorf("%s = %v; want %v", name, got[name], want)
		}
	}
	if c := got["opstate_commits_total"]; c < 1 || c > goroutines*rounds {
		t.Errorf("opstate_commits_total = %v; want 1 to %d", c, goroutines*rounds)
	}
}

// gather scrapes a registry of one collector: each metric's value by name.
func gather(g prometheus.Gatherer) (map[string]float64, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, err
	}
	vals := make(map[string]float64)
	for _, mf := range mfs {
		if len(mf.GetMetric()) != 1 {
			return nil, fmt.Errorf("%s has %d metrics; want 1", mf.GetName(), len(mf.GetMetric()))
		}
		vals[mf.GetName()] = value(mf.GetMetric()[0])
	}
	return vals, nil
}

// value is a counter's or gauge's value.
func value(m *dto.Metric) float64 {
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// TestEveryStatsFieldHasMetric fails when a field of opstate.Stats has no
// metric, or more than one, or a metric reports another field: it gives
// every field a value of its own and looks for exactly one metric with
// it, named after the field: for the unsigned fields (monotonic counts)
// a counter, opstate_<field in snake_case>_total; for the signed ones (the
// cache's size) a gauge, opstate_cache_<field>. It also checks that
// Describe sends one Desc per field, each collected metric's among them
// (the pedantic registry checks that at every Gather).
func TestEveryStatsFieldHasMetric(t *testing.T) {
	var st opstate.Stats
	v := reflect.ValueOf(&st).Elem()
	n := v.NumField()
	for i := range n {
		switch f := v.Field(i); f.Kind() {
		case reflect.Uint64:
			f.SetUint(uint64(101 + i))
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(101 + i))
		default:
			t.Fatalf("Stats.%s is a %s; the collector mirrors integer fields only", v.Type().Field(i).Name, f.Kind())
		}
	}
	c := opstateprom.NewStatsCollector(func() opstate.Stats { return st }, "state")

	descs := make(chan *prometheus.Desc, 2*n)
	c.Describe(descs)
	close(descs)
	if len(descs) != n {
		t.Errorf("Describe sent %d Descs; want %d, one per field of opstate.Stats", len(descs), n)
	}

	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byValue := make(map[float64][]*dto.MetricFamily)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			byValue[value(m)] = append(byValue[value(m)], mf)
		}
	}
	for i := range n {
		field := v.Type().Field(i)
		mfs := byValue[float64(101+i)]
		if len(mfs) != 1 {
			var names []string
			for _, mf := range mfs {
				names = append(names, mf.GetName())
			}
			t.Errorf("Stats.%s (set to %d) is reported by %d metrics %q; want exactly one", field.Name, 101+i, len(mfs), names)
			continue
		}
		wantType, wantName := dto.MetricType_GAUGE, "opstate_cache_"+snakeCase(field.Name)
		if field.Type.Kind() == reflect.Uint64 {
			wantType, wantName = dto.MetricType_COUNTER, "opstate_"+snakeCase(field.Name)+"_total"
		}
		if mf := mfs[0]; mf.GetName() != wantName || mf.GetType() != wantType {
			t.Errorf("Stats.%s (%s) is reported by %s, a %s; want %s, a %s", field.Name, field.Type, mf.GetName(), mf.GetType(), wantName, wantType)
		}
	}
	if len(mfs) != n {
		t.Errorf("Gather returned %d metric families; want %d, one per field", len(mfs), n)
	}
}

// snakeCase turns a Go field name into a metric name's words: WatchResets
// is watch_resets.
func snakeCase(name string) string {
	var b strings.Builder
	for i, r := range name {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
