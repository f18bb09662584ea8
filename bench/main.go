// Command bench runs the same workloads through opstate and the stores it
// is compared with, in one process, and prints one Markdown table of
// medians and ratios followed by opstate's performance targets.
//
//	cd bench && go run .                  # full run: 10 repetitions of 500ms
//	go run . -short                       # smoke run
//	go run . -only 'get-hit/' -count 10   # some rows only
//	pg_virtualenv -- go run . -only pg    # the PostgreSQL rows on a throwaway server
//	go run . -hitratio                    # hit ratios of the caches on generated traces
//
// Each row is one testing.Benchmark call, repeated -count times; the
// implementations of a workload take turns within every repetition, so
// that a drift of the machine touches them alike. The PostgreSQL rows
// (pg.go, staleness.go) run on the server of OPSTATE_PG_DSN or libpq's
// PG* variables, and are reported as not run when there is none.
//
// With -hitratio, it runs the traces of traces.go through opstate's cache
// and others of the same capacity instead (hitratio.go), and prints their
// hit ratios and opstate's targets for them; -only then selects traces.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

func main() {
	if code, ran := runChildRole(); ran {
		os.Exit(code)
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// config is what the flags select.
type config struct {
	count     int
	benchtime string
	only      *regexp.Regexp
	dir       string
	profile   string
	hitratio  bool
}

func parseFlags() (config, error) {
	count := flag.Int("count", 10, "run each benchmark `n` times and report the median")
	benchtime := flag.String("benchtime", "500ms", "run each benchmark for duration `d`, or N times if d is of the form Nx")
	only := flag.String("only", "", "run only the rows whose workload/implementation matches `regexp`, e.g. 'get-hit/' or 'set-.*/opstate'")
	short := flag.Bool("short", false, "quick smoke run: -count 3 -benchtime 100ms unless given")
	dir := flag.String("dir", "", "create the temporary database directory in `dir` (default: the system temporary directory)")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the timed runs (setup excluded) to `file`")
	hitratio := flag.Bool("hitratio", false, "measure hit ratios on generated traces instead of timings; -only selects traces, e.g. 'zipf'")
	flag.Parse()
	if flag.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	given := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if *short {
		if !given["count"] {
			*count = 3
		}
		if !given["benchtime"] {
			*benchtime = "100ms"
		}
	}
	if *count < 1 {
		return config{}, fmt.Errorf("-count %d: must be at least 1", *count)
	}
	c := config{count: *count, benchtime: *benchtime, dir: *dir, profile: *profile, hitratio: *hitratio}
	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			return config{}, fmt.Errorf("-only: %w", err)
		}
		c.only = re
	}
	// testing.Benchmark reads its duration from the testing package's own
	// flag, registered by testing.Init.
	testing.Init()
	if err := flag.Set("test.benchtime", c.benchtime); err != nil {
		return config{}, fmt.Errorf("-benchtime: %w", err)
	}
	return c, nil
}

func run() error {
	cfg, err := parseFlags()
	if err != nil {
		return err
	}
	began := time.Now()
	dir, err := os.MkdirTemp(cfg.dir, "opstate-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if cfg.hitratio {
		// An interrupted run removes its database too.
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
		go func() {
			<-sigs
			os.RemoveAll(dir)
			os.Exit(130)
		}()
		return runHitRatio(os.Stdout, dir, cfg.only)
	}

	w := newWorkload()
	st := &stores{dir: dir, w: w}
	defer st.Close()
	var fail failures
	var rows []row
	for _, r := range plan(st, w, &fail) {
		if cfg.only == nil || cfg.only.MatchString(r.name()) {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		return fmt.Errorf("-only %q selects no row", cfg.only)
	}
	results := make([]*summary, len(rows))
	for i, r := range rows {
		results[i] = &summary{workload: r.workload, impl: r.impl, pg: r.pg}
	}
	// Without a PostgreSQL server, its rows are reported as not run.
	if slices.ContainsFunc(rows, func(r row) bool { return r.pg }) {
		if pg, err := connectPG(); err != nil {
			skipPG(results, err)
		} else {
			st.pg = pg
		}
	}

	// An interrupted run removes its databases too (st.pg is set by now).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		os.RemoveAll(dir)
		if st.pg != nil {
			st.pg.drop()
		}
		os.Exit(130)
	}()

	printHeader(os.Stdout, cfg, dir, began)
	running := 0
	for i, r := range rows {
		if results[i].notRun != "" {
			continue
		}
		if err := r.prepare(); err != nil {
			return fmt.Errorf("setting up %s: %w", r.name(), err)
		}
		running++
	}
	fmt.Fprintf(os.Stderr, "set up in %v; running %d rows × %d\n", time.Since(began).Round(time.Millisecond), running, cfg.count)

	if cfg.profile != "" {
		f, err := os.Create(cfg.profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	before := sampleCPU()
	// Workload by workload; within each repetition every implementation
	// of the workload runs once.
	for lo := 0; lo < len(rows); {
		hi := lo + 1
		for hi < len(rows) && rows[hi].workload == rows[lo].workload {
			hi++
		}
		for rep := range cfg.count {
			for i := lo; i < hi; i++ {
				if results[i].notRun != "" {
					continue
				}
				res := testing.Benchmark(rows[i].fn)
				if err := fail.take(); err != nil {
					return fmt.Errorf("%s: %w", rows[i].name(), err)
				}
				if res.N == 0 {
					return fmt.Errorf("%s: benchmark failed", rows[i].name())
				}
				results[i].add(res)
				fmt.Fprintf(os.Stderr, "%-36s %d/%d %12s ns/op %4d allocs/op  (N=%d)%s\n",
					rows[i].name(), rep+1, cfg.count, formatNs(nsPerOp(res)), res.AllocsPerOp(), res.N, formatMetrics(res))
			}
		}
		lo = hi
	}
	after := sampleCPU()
	if err := st.Close(); err != nil {
		return fmt.Errorf("closing stores: %w", err)
	}

	printTable(os.Stdout, results)
	printTargets(os.Stdout, results)
	fmt.Fprintf(os.Stdout, "\nTotal time %v.", time.Since(began).Round(time.Second))
	if others := othersCPUs(before, after); others >= 0 {
		fmt.Fprintf(os.Stdout, " Other processes kept %.2f of %d CPUs busy on average during the timed runs.", others, runtime.NumCPU())
	}
	fmt.Fprintln(os.Stdout)
	return nil
}

// row is one benchmark: a workload run through one implementation.
type row struct {
	workload, impl string
	pg             bool         // needs the PostgreSQL server (pg.go)
	prepare        func() error // opens and warms the store fn uses
	fn             func(*testing.B)
}

func (r row) name() string { return r.workload + "/" + r.impl }

// plan returns every row, grouped by workload, opstate first in each
// (opstate-pg where there is no opstate row).
func plan(st *stores, w *workload, fail *failures) []row {
	var rows []row
	add := func(workload, impl string, prepare func() error, fn func(*testing.B)) {
		rows = append(rows, row{workload: workload, impl: impl, prepare: prepare, fn: fn})
	}
	addPG := func(workload, impl string, prepare func() error, fn func(*testing.B)) {
		rows = append(rows, row{workload: workload, impl: impl, pg: true, prepare: prepare, fn: fn})
	}
	opstateNormal := func() error { return st.openOpstate(normal) }
	sqliteNormal := func() error { return st.openSQLite(normal) }
	sqliteStore := func() *opstate.Store { return st.opstate[normal] }
	pgStore := func() *opstate.Store { return st.opstatePG }
	for _, par := range []bool{false, true} {
		wl := "get-hit" + suffix(par)
		add(wl, "opstate", opstateNormal, getOpstate(sqliteStore, "opstate", w.keys, true, par, fail))
		addPG(wl, "opstate-pg", st.openOpstatePG, getOpstate(pgStore, "opstate-pg", w.keys, true, par, fail))
		add(wl, "sqlite-only", sqliteNormal, getSQLite(st, w.keys, true, par, fail))
		add(wl, "otter", st.openOtter, getOtter(st, w.composite, true, par, fail))
		add(wl, "golang-lru", st.openLRU, getLRU(st, w.composite, true, par, fail))
		add(wl, "buntdb", st.openBunt, getBunt(st, w.composite, true, par, fail))
		add(wl, "bbolt", st.openBolt, getBolt(st, w.boltKeys, true, par, fail))
	}
	for _, par := range []bool{false, true} {
		wl := "get-absent" + suffix(par)
		add(wl, "opstate", opstateNormal, getOpstate(sqliteStore, "opstate", w.missing, false, par, fail))
		add(wl, "sqlite-only", sqliteNormal, getSQLite(st, w.missing, false, par, fail))
		add(wl, "otter", st.openOtterNeg, getOtterNeg(st, w.compMissing, par, fail))
		add(wl, "golang-lru", st.openLRUNeg, getLRUNeg(st, w.compMissing, par, fail))
		add(wl, "otter (plain miss)", st.openOtter, getOtter(st, w.compMissing, false, par, fail))
		add(wl, "golang-lru (plain miss)", st.openLRU, getLRU(st, w.compMissing, false, par, fail))
	}
	for _, concurrent := range []bool{false, true} {
		for _, d := range []durability{normal, full} {
			wl := "set-" + strings.ToLower(d.String())
			bench := setSingle
			if concurrent {
				wl = "set-concurrent-" + strings.ToLower(d.String())
				bench = setConcurrent
			}
			add(wl, "opstate", func() error { return st.openOpstate(d) },
				bench(func(ns, k, v string) error { return st.opstate[d].Set(ns, k, v) }, w, fail))
			add(wl, "sqlite-only", func() error { return st.openSQLite(d) },
				bench(func(ns, k, v string) error { return st.sqlite[d].Set(ns, k, v) }, w, fail))
		}
	}
	// A Set to a namespace that keeps no history, in a file where another
	// one does, and to a namespace that keeps history (its keep of
	// historyKeep not pruned during the run: no sweeper runs).
	for which, wl := range map[int]string{historyOther: "set-nohistory", historyOwn: "set-history"} {
		add(wl, "opstate", func() error { return st.openHistory(which) },
			setSingle(func(ns, k, v string) error { return st.history[which].Set(ns, k, v) }, w, fail))
	}
	for _, concurrent := range []bool{false, true} {
		wl, bench := "set-pg", setSingle
		if concurrent {
			wl, bench = "set-concurrent-pg", setConcurrent
		}
		addPG(wl, "opstate-pg", st.openOpstatePG,
			bench(func(ns, k, v string) error { return st.opstatePG.Set(ns, k, v) }, w, fail))
		addPG(wl, "opstate-pg-history", st.openOpstatePGHistory,
			bench(func(ns, k, v string) error { return st.opstatePGHistory.Set(ns, k, v) }, w, fail))
		addPG(wl, "pgx-only", st.openPgxOnly,
			bench(func(ns, k, v string) error { return st.pgxOnly.Set(ns, k, v) }, w, fail))
		addPG(wl, "pgx+trigger", st.openPgxTrigger,
			bench(func(ns, k, v string) error { return st.pgxTrigger.Set(ns, k, v) }, w, fail))
	}
	addPG("staleness-pg", "opstate-pg", st.openStaleOpstate,
		stalenessBench(func() *staleness { return st.staleOpstate }, w, fail))
	addPG("staleness-pg", "pgx-listen", st.openStaleListen,
		stalenessBench(func() *staleness { return st.staleListen }, w, fail))
	return rows
}

func suffix(parallel bool) string {
	if parallel {
		return "-parallel"
	}
	return ""
}
