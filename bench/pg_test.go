package main

import (
	"context"
	"flag"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// testPG returns the PostgreSQL server of the tests, or skips the test
// without one, unless OPSTATE_REQUIRE_PG=1 or CI=true (as pgstate's tests
// do).
func testPG(t *testing.T) *pgServer {
	t.Helper()
	pg, err := connectPG()
	if err != nil {
		if os.Getenv("OPSTATE_REQUIRE_PG") == "1" || os.Getenv("CI") == "true" {
			t.Fatalf("no PostgreSQL server (OPSTATE_REQUIRE_PG=1 or CI=true): %v", err)
		}
		t.Skipf("no PostgreSQL server (set %s or PG*, or run under pg_virtualenv): %v", pgDSNEnv, err)
	}
	return pg
}

// TestPGRows runs every PostgreSQL row a few times against a real server:
// each sets up (the Store's cache then holds every key, the bare table
// every row), runs without a failure its checks find (a cached Get that
// misses, a staleness round whose value never arrives or a wrong one), and
// reports the staleness metrics; closing the stores stops the children
// and drops every schema the rows created.
func TestPGRows(t *testing.T) {
	pg := testPG(t)
	old := flag.Lookup("test.benchtime").Value.String()
	if err := flag.Set("test.benchtime", "20x"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { flag.Set("test.benchtime", old) })

	w := newWorkload()
	st := &stores{dir: t.TempDir(), w: w, pg: pg}
	defer st.Close()
	var fail failures
	ran := 0
	for _, r := range plan(st, w, &fail) {
		if !r.pg {
			continue
		}
		if err := r.prepare(); err != nil {
			t.Fatalf("setting up %s: %v", r.name(), err)
		}
		res := testing.Benchmark(r.fn)
		if err := fail.take(); err != nil {
			t.Errorf("%s: %v", r.name(), err)
			continue
		}
		if res.N == 0 {
			t.Errorf("%s: benchmark failed", r.name())
			continue
		}
		ran++
		if r.workload == "staleness-pg" {
			for _, u := range []string{"p50-µs", "p99-µs", "set-µs"} {
				if _, ok := res.Extra[u]; !ok {
					t.Errorf("%s reports %v; want %s among them", r.name(), res.Extra, u)
				}
			}
		}
	}
	if ran != 12 {
		t.Errorf("%d PostgreSQL rows ran; want 12", ran)
	}

	pg.mu.Lock()
	var schemas []string
	for s := range pg.schemas {
		schemas = append(schemas, s)
	}
	pg.mu.Unlock()
	if len(schemas) != 6 {
		t.Errorf("the rows created schemas %v; want 6 (opstate-pg, opstate-pg-history, pgx-only, pgx+trigger and two for staleness)", schemas)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("closing the stores: %v", err)
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, pg.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var left int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = ANY($1)`, schemas).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d of the schemas %v are left after Close; want 0", left, schemas)
	}
}
