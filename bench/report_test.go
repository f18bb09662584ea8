package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestPrintTableNotRun checks that PostgreSQL rows without a server are
// reported as not run, with the reason once under the table, and that
// their targets are not run rather than failed.
func TestPrintTableNotRun(t *testing.T) {
	results := []*summary{
		{workload: "set-normal", impl: "opstate", ns: []float64{100}, allocs: []float64{3}},
		{workload: "set-pg", impl: "opstate-pg", pg: true},
		{workload: "staleness-pg", impl: "opstate-pg", pg: true},
	}
	skipPG(results, errors.New("dial error"))
	if results[0].notRun != "" {
		t.Errorf("skipPG marked the SQLite row not run: %q", results[0].notRun)
	}
	var b strings.Builder
	printTable(&b, results)
	printTargets(&b, results)
	out := b.String()
	wantLines(t, out,
		"| set-normal | opstate | 100 | 3 | 1.00x | 100–100 |",
		"| set-pg | opstate-pg | not run (no PostgreSQL server) | – | – | – |",
		"| staleness-pg | opstate-pg | not run (no PostgreSQL server) | – | – | – |",
		"| staleness-pg: opstate-pg p50 | – | <= 1000 µs | not run |")
	if n := strings.Count(out, "Not run (no PostgreSQL server): dial error; set "+pgDSNEnv); n != 1 {
		t.Errorf("the reason is given %d times; want once:\n%s", n, out)
	}
	if strings.Contains(out, "other metrics") {
		t.Errorf("a column of metrics, though no row reported any:\n%s", out)
	}
}

// TestPrintTableMetrics checks that the medians of b.ReportMetric's
// metrics make a column, and the staleness targets read them.
func TestPrintTableMetrics(t *testing.T) {
	stale := &summary{workload: "staleness-pg", impl: "opstate-pg", pg: true}
	listen := &summary{workload: "staleness-pg", impl: "pgx-listen", pg: true}
	for _, run := range []struct{ ns, p50, p99 float64 }{{1e6, 300, 9000}, {3e6, -20, 12000}, {2e6, 100, 11000}} {
		stale.ns = append(stale.ns, run.ns)
		stale.allocs = append(stale.allocs, 50)
		stale.extra = map[string][]float64{
			"p50-µs": append(stale.extra["p50-µs"], run.p50),
			"p99-µs": append(stale.extra["p99-µs"], run.p99),
		}
		listen.ns = append(listen.ns, run.ns/10)
		listen.allocs = append(listen.allocs, 20)
	}
	results := []*summary{
		stale, listen,
		{workload: "get-hit", impl: "opstate-pg", pg: true, notRun: "no PostgreSQL server", notRunErr: errors.New("x")},
	}
	var b strings.Builder
	printTable(&b, results)
	printTargets(&b, results)
	wantLines(t, b.String(),
		"| workload | implementation | median ns/op | allocs/op | ratio vs opstate | min–max ns/op | other metrics (medians) |",
		"| staleness-pg | opstate-pg | 2000000 | 50 | 1.00x | 1000000–3000000 | 100 p50-µs, 11000 p99-µs |",
		"| staleness-pg | pgx-listen | 200000 | 20 | 0.10x | 100000–300000 |  |",
		"| get-hit | opstate-pg | not run (no PostgreSQL server) | – | – | – | – |",
		"| staleness-pg: opstate-pg p50 | 100 µs | <= 1000 µs | PASS |",
		"| staleness-pg: opstate-pg p99 | 11000 µs | <= 10000 µs | FAIL |")
}

// wantLines fails t for each of lines that is not a whole line of out.
func wantLines(t *testing.T, out string, lines ...string) {
	t.Helper()
	have := strings.Split(out, "\n")
	for _, l := range lines {
		if !slices.Contains(have, l) {
			t.Errorf("output lacks the line %q:\n%s", l, out)
		}
	}
}
