package main

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// summary is every run of one row.
type summary struct {
	workload, impl string
	pg             bool                 // a PostgreSQL row
	ns             []float64            // ns/op of each run
	allocs         []float64            // allocs/op of each run, as go test reports them
	extra          map[string][]float64 // each b.ReportMetric unit's value in each run
	// notRun, when not "", says why the row was not run ("no PostgreSQL
	// server"), and notRunErr the error behind it.
	notRun    string
	notRunErr error
}

func nsPerOp(r testing.BenchmarkResult) float64 {
	return float64(r.T.Nanoseconds()) / float64(r.N)
}

func (s *summary) add(r testing.BenchmarkResult) {
	s.ns = append(s.ns, nsPerOp(r))
	s.allocs = append(s.allocs, float64(r.AllocsPerOp()))
	for unit, v := range r.Extra {
		if s.extra == nil {
			s.extra = map[string][]float64{}
		}
		s.extra[unit] = append(s.extra[unit], v)
	}
}

// skipPG marks the PostgreSQL rows of results as not run for want of a
// server, err saying why.
func skipPG(results []*summary, err error) {
	for _, s := range results {
		if s.pg {
			s.notRun = "no PostgreSQL server"
			s.notRunErr = fmt.Errorf("%w; set %s or libpq's PG* variables, or run under pg_virtualenv", err, pgDSNEnv)
		}
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func (s *summary) medianNs() float64     { return median(s.ns) }
func (s *summary) medianAllocs() float64 { return median(s.allocs) }

// find returns the summary of workload/impl, or nil when it was not run.
func find(results []*summary, workload, impl string) *summary {
	for _, s := range results {
		if s.workload == workload && s.impl == impl && len(s.ns) > 0 {
			return s
		}
	}
	return nil
}

// base returns the row a workload's ratios divide by: opstate's, or
// opstate-pg's in the PostgreSQL workloads (named "…-pg"); nil when it was
// not run.
func base(results []*summary, workload string) *summary {
	if strings.HasSuffix(workload, "-pg") {
		return find(results, workload, "opstate-pg")
	}
	return find(results, workload, "opstate")
}

// units returns the b.ReportMetric units of results, sorted.
func units(results []*summary) []string {
	var us []string
	for _, s := range results {
		for u := range s.extra {
			if !slices.Contains(us, u) {
				us = append(us, u)
			}
		}
	}
	slices.Sort(us)
	return us
}

// formatExtra is the medians of s's metrics, in the order of units.
func formatExtra(s *summary, units []string) string {
	var parts []string
	for _, u := range units {
		if vs := s.extra[u]; len(vs) > 0 {
			parts = append(parts, fmt.Sprintf("%s %s", formatMetric(median(vs)), u))
		}
	}
	return strings.Join(parts, ", ")
}

func formatNs(ns float64) string {
	if ns < 100 {
		return fmt.Sprintf("%.1f", ns)
	}
	return fmt.Sprintf("%.0f", ns)
}

// formatMetrics is a run's b.ReportMetric metrics, for the progress lines.
func formatMetrics(r testing.BenchmarkResult) string {
	var b strings.Builder
	for _, u := range slices.Sorted(maps.Keys(r.Extra)) {
		fmt.Fprintf(&b, " %s %s", formatMetric(r.Extra[u]), u)
	}
	return b.String()
}

// formatMetric formats a b.ReportMetric value, which may be negative.
func formatMetric(x float64) string {
	if math.Abs(x) < 100 {
		return fmt.Sprintf("%.1f", x)
	}
	return fmt.Sprintf("%.0f", x)
}

func formatRatio(r float64) string {
	switch {
	case r < 10:
		return fmt.Sprintf("%.2fx", r)
	case r < 100:
		return fmt.Sprintf("%.1fx", r)
	}
	return fmt.Sprintf("%.0fx", r)
}

// printRunHeader prints what every report begins with: when it ran, the
// command, the machine and opstate's commit.
func printRunHeader(w io.Writer, began time.Time) {
	cmd := "cd bench && go run ."
	for _, a := range os.Args[1:] {
		cmd += " " + shellQuote(a)
	}
	fmt.Fprintf(w, "- date: %s\n", began.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "- command: `%s`\n", cmd)
	fmt.Fprintf(w, "- machine: %s, %s/%s, GOMAXPROCS %d, NumCPU %d, %s\n",
		cpuModel(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), runtime.NumCPU(), runtime.Version())
	fmt.Fprintf(w, "- opstate: %s\n", opstateVersion())
}

func printHeader(w io.Writer, cfg config, dir string, began time.Time) {
	printRunHeader(w, began)
	fmt.Fprintf(w, "- databases in %s (%s)\n", dir, fsType(dir))
	fmt.Fprintf(w, "- %d runs of every row, benchtime %s; medians below\n", cfg.count, cfg.benchtime)
}

// shellQuote returns s quoted for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	plain := s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+", r))
	}) < 0
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "CPU unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name, value, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return "CPU unknown"
}

// fsType returns the type of the file system holding dir, from the
// longest mount point of /proc/mounts that contains it.
func fsType(dir string) string {
	if p, err := filepath.EvalSymlinks(dir); err == nil {
		dir = p
	}
	data, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return "file system unknown"
	}
	best, typ := "", "file system unknown"
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		mnt := f[1]
		inside := dir == mnt || strings.HasPrefix(dir, strings.TrimSuffix(mnt, "/")+"/")
		if inside && len(mnt) >= len(best) {
			best, typ = mnt, f[2]
		}
	}
	return typ
}

func printTable(w io.Writer, results []*summary) {
	// The column of b.ReportMetric's metrics only when a row has some.
	us := units(results)
	head, rule := "", ""
	if len(us) > 0 {
		head, rule = " other metrics (medians) |", " --- |"
	}
	fmt.Fprintf(w, "\n## Results\n\n| workload | implementation | median ns/op | allocs/op | ratio vs opstate | min–max ns/op |%s\n", head)
	fmt.Fprintf(w, "| --- | --- | ---: | ---: | ---: | ---: |%s\n", rule)
	pg := false
	var notRun []*summary // the first not run for each reason
	for _, s := range results {
		pg = pg || s.pg
		extra := ""
		if len(us) > 0 {
			extra = " " + formatExtra(s, us) + " |"
		}
		if s.notRun != "" {
			if !slices.ContainsFunc(notRun, func(n *summary) bool { return n.notRun == s.notRun }) {
				notRun = append(notRun, s)
			}
			if len(us) > 0 {
				extra = " – |"
			}
			fmt.Fprintf(w, "| %s | %s | not run (%s) | – | – | – |%s\n", s.workload, s.impl, s.notRun, extra)
			continue
		}
		ratio := "–"
		if b := base(results, s.workload); b != nil {
			ratio = formatRatio(s.medianNs() / b.medianNs())
		}
		fmt.Fprintf(w, "| %s | %s | %s | %g | %s | %s–%s |%s\n", s.workload, s.impl,
			formatNs(s.medianNs()), s.medianAllocs(), ratio,
			formatNs(slices.Min(s.ns)), formatNs(slices.Max(s.ns)), extra)
	}
	for _, s := range notRun {
		fmt.Fprintf(w, "\nNot run (%s): %v\n", s.notRun, s.notRunErr)
	}
	_, goroutines := writerParallelism()
	fmt.Fprintf(w, `
Ratio vs opstate: the row's median ns/op ÷ opstate's in the same workload;
above 1 means opstate is faster (for sets: has the higher throughput).

- Workload: namespace %q, %d keys "key-00000".."key-09999" with %d-byte
  values, visited in one fixed pseudo-random order; written and read once
  before timing. get-absent looks up %d keys "missing-…" that do not exist,
  each looked up once before timing (opstate caches them as absent).
- *-parallel: b.RunParallel with GOMAXPROCS goroutines; ns/op is wall time
  ÷ operations of all goroutines. set-concurrent-*: %d goroutines
  (b.SetParallelism), each setting its own share of the keys.
- opstate: Open(path, Options{SweepInterval: -1}), default 32 MiB cache;
  Durability FULL in the *-full rows. Get(ns, key) and Set(ns, key, value).
- sqlite-only: the SQLite-only design opstate replaced, rebuilt in
  sqliteonly.go: database/sql on modernc.org/sqlite, same schema and pragmas
  (WAL, synchronous NORMAL, or FULL in the *-full rows, busy_timeout 5000),
  a pool of %d connections kept open, a prepared point SELECT per Get and a
  prepared upsert per Set in its own autocommit transaction.
- get-absent*: opstate answers "absent" from a negative entry it cached
  when a lookup first missed. otter and golang-lru do the same here: they
  hold a marker value for each absent key, which is what a cache in front of
  a store must do to answer "absent" without asking the store; the target
  compares with that row. The "(plain miss)" rows are a lookup of a key the
  cache does not hold at all, shown for reference: in front of a store, that
  lookup would be followed by a store read.
- golang-lru (lru.Cache), otter (GetIfPresent) and buntdb are given
  precomputed composite keys "flags\x00key-…", and bbolt precomputed []byte
  keys in bucket "flags", where opstate and sqlite-only take (namespace,
  key); no implementation builds a key inside the timed loop.
- buntdb: a file with the default config (SyncPolicy EverySecond); each Get
  in its own db.View. bbolt: default options; each Get in its own db.View,
  the value is not copied out of the transaction (bbolt's best case).
`, namespace, numKeys, valueLen, numKeys, goroutines, sqliteConns)
	if pg {
		fmt.Fprintf(w, `- PostgreSQL rows: the server of %s or libpq's PG* variables;
  each store on a schema of its own, created for the run and dropped after
  it. opstate-pg: pgstate.Open(ctx, dsn, Options{SweepInterval: -1}),
  filled and read as opstate is, its listener up. opstate-pg-history: the
  same, its namespace keeping history (keep %d, never pruned in a run).
  pgx-only: pgx v5, a pgxpool of %d connections on opstate's table as
  pgstate.Open creates it, with its notifying trigger dropped; one upsert
  per Set, autocommit, updated_at now() as opstate writes it.
- staleness-pg: this program, run again as a child process, holds a second
  writer on the parent's schema. One op: the parent sends a value over a
  pipe; the child writes it to %s and answers once the write returned;
  the parent waits until it serves the value. opstate-pg: the child's
  Store Sets; the parent polls Get of its own Store, which had the key
  cached, in a tight loop. pgx-listen: the child upserts with pgx-only's
  statement on a bare table whose trigger pg_notifies the new value; the
  parent waits on a plain pgx connection LISTENing. ns/op is the mean
  round. p50-µs and p99-µs are of the staleness t_seen − t_reply, both
  instants of the parent (when it served the value, when the child's
  answer arrived): negative when the notification outran the pipe, not
  clamped. set-µs is the child's mean write by its own clock. Each is the
  median over the runs of each run's figure.
`, pgDSNEnv, historyKeep, pgxConns, staleKey)
	}
}

// target is one performance goal of opstate.
type target struct {
	name     string
	measured float64 // NaN when a row it needs was not run
	op       string  // "==", "<=" or ">="
	limit    float64
	format   func(float64) string
}

func (t target) result() string {
	switch {
	case math.IsNaN(t.measured):
		return "not run"
	case t.op == "==" && t.measured == t.limit,
		t.op == "<=" && t.measured <= t.limit,
		t.op == ">=" && t.measured >= t.limit:
		return "PASS"
	}
	return "FAIL"
}

func printTargets(w io.Writer, results []*summary) {
	ns := func(wl, impl string) float64 {
		if s := find(results, wl, impl); s != nil {
			return s.medianNs()
		}
		return math.NaN()
	}
	allocs := func(wl, impl string) float64 {
		if s := find(results, wl, impl); s != nil {
			return s.medianAllocs()
		}
		return math.NaN()
	}
	metric := func(wl, impl, unit string) float64 {
		if s := find(results, wl, impl); s != nil && len(s.extra[unit]) > 0 {
			return median(s.extra[unit])
		}
		return math.NaN()
	}
	count := func(x float64) string { return fmt.Sprintf("%g", x) }
	inMicros := func(x float64) string { return fmt.Sprintf("%.0f µs", x) }

	var ts []target
	for _, wl := range []string{"get-hit", "get-hit-parallel", "get-absent", "get-absent-parallel"} {
		ts = append(ts,
			target{wl + ": opstate allocs/op", allocs(wl, "opstate"), "==", 0, count},
			target{wl + ": opstate ns/op ÷ otter ns/op", ns(wl, "opstate") / ns(wl, "otter"), "<=", 1, formatRatio})
	}
	// A lone Set pays for the change log (a trigger and one more page a
	// transaction), which the bare upsert does not have: the target allows
	// it 1.5 times the bare upsert (1.1 before the log).
	for _, wl := range []string{"set-normal", "set-full"} {
		ts = append(ts, target{wl + ": opstate ns/op ÷ sqlite-only ns/op", ns(wl, "opstate") / ns(wl, "sqlite-only"), "<=", 1.5, formatRatio})
	}
	ts = append(ts,
		target{"set-concurrent-normal: sqlite-only ns/op ÷ opstate ns/op", ns("set-concurrent-normal", "sqlite-only") / ns("set-concurrent-normal", "opstate"), ">=", 2, formatRatio},
		target{"set-concurrent-full: sqlite-only ns/op ÷ opstate ns/op", ns("set-concurrent-full", "sqlite-only") / ns("set-concurrent-full", "opstate"), ">=", 5, formatRatio})
	for _, wl := range []string{"get-hit", "get-hit-parallel"} {
		ts = append(ts, target{wl + ": sqlite-only ns/op ÷ opstate ns/op", ns(wl, "sqlite-only") / ns(wl, "opstate"), ">=", 100, formatRatio})
	}
	// Issue 11: the Store over PostgreSQL reads from its cache as the
	// SQLite Store does, and serves another process's write within a
	// millisecond or so.
	for _, wl := range []string{"get-hit", "get-hit-parallel"} {
		ts = append(ts,
			target{wl + ": opstate-pg allocs/op", allocs(wl, "opstate-pg"), "==", 0, count},
			target{wl + ": opstate-pg ns/op ÷ opstate ns/op", ns(wl, "opstate-pg") / ns(wl, "opstate"), "<=", 1.1, formatRatio})
	}
	ts = append(ts,
		target{"staleness-pg: opstate-pg p50", metric("staleness-pg", "opstate-pg", "p50-µs"), "<=", 1000, inMicros},
		target{"staleness-pg: opstate-pg p99", metric("staleness-pg", "opstate-pg", "p99-µs"), "<=", 10000, inMicros})

	fmt.Fprintf(w, "\n## Targets\n\n| target | measured | required | result |\n| --- | ---: | ---: | --- |\n")
	pass, run := 0, 0
	for _, t := range ts {
		m := "–"
		if !math.IsNaN(t.measured) {
			m = t.format(t.measured)
			run++
		}
		r := t.result()
		if r == "PASS" {
			pass++
		}
		fmt.Fprintf(w, "| %s | %s | %s %s | %s |\n", t.name, m, t.op, t.format(t.limit), r)
	}
	fmt.Fprintf(w, "\n%d of %d targets measured pass.\n", pass, run)
}

// opstateVersion describes the opstate source being measured: the commit
// of the repository above bench/ and whether its files outside bench/
// differ from it. go run builds from the working tree, so a run measures
// the tree as it was when the run started.
func opstateVersion() string {
	out, err := exec.Command("git", "-C", "..", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown (no git)"
	}
	v := "commit " + strings.TrimSpace(string(out))
	status, err := exec.Command("git", "-C", "..", "status", "--porcelain", "--", ".", ":(exclude)bench").Output()
	if err == nil && len(strings.TrimSpace(string(status))) > 0 {
		n := len(strings.Split(strings.TrimSpace(string(status)), "\n"))
		v += fmt.Sprintf(" with uncommitted changes to %d files", n)
	}
	return v
}
