package pgdb_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/d8da9184/opstate/pgstate/internal/pgdb"
	"github.com/d8da9184/opstate/storage"
)

// BenchmarkNotifyTrigger measures what the notify trigger costs a write:
// upserts of one row and of 100 rows in one statement (as a batch of Puts
// sends them), on tables with schema version 1's trigger, version 2's,
// version 3's (with the triggers that record history) for a namespace
// without history and for one with (v3-history), version 4's for one
// with (v4-history: the history table with one index where version 3's
// had three), and with none. Each iteration runs the statement on every
// variant in turn, so that a machine's changing load weighs on each
// alike; the metrics are the server's time per row, round trip included.
func BenchmarkNotifyTrigger(b *testing.B) {
	variants := []struct {
		name string
		sql  string // makes the schema, from nothing
	}{
		{"none", pgdb.Migrations()[0] + `; DROP TRIGGER operational_state_notify ON operational_state`},
		{"v1", pgdb.Migrations()[0]},
		{"v2", pgdb.Migrations()[0] + ";" + pgdb.Migrations()[1]},
		{"v3", pgdb.Migrations()[0] + ";" + pgdb.Migrations()[1] + ";" + pgdb.Migrations()[2]},
		{"v3-history", pgdb.Migrations()[0] + ";" + pgdb.Migrations()[1] + ";" + pgdb.Migrations()[2] +
			"; INSERT INTO operational_state_history_keep VALUES ('ns', 1000)"},
		{"v4-history", pgdb.Migrations()[0] + ";" + pgdb.Migrations()[1] + ";" + pgdb.Migrations()[2] + ";" + pgdb.Migrations()[3] +
			"; INSERT INTO operational_state_history_keep VALUES ('ns', 1000)"},
	}
	const upsert = `INSERT INTO operational_state (namespace, key, value, updated_at)
		SELECT n, k, v, now() FROM unnest($1::text[], $2::text[], $3::text[]) AS t(n, k, v)
		ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value`
	for _, rows := range []int{1, 100} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			pools := make([]rawPool, len(variants))
			for i, v := range variants {
				_, pools[i] = server(b)
				if _, err := pools[i].Exec(context.Background(), v.sql); err != nil {
					b.Fatal(err)
				}
			}
			nss := make([]string, rows)
			keys := make([]string, rows)
			vals := make([]string, rows)
			for i := range rows {
				nss[i], keys[i] = "ns", fmt.Sprintf("key-%03d", i)
			}
			spent := make([]time.Duration, len(variants))
			b.ReportAllocs()
			b.ResetTimer()
			for n := 0; b.Loop(); n++ {
				for i := range vals {
					vals[i] = fmt.Sprint(n)
				}
				for i, p := range pools {
					start := time.Now()
					if _, err := p.Exec(context.Background(), upsert, nss, keys, vals); err != nil {
						b.Fatal(err)
					}
					spent[i] += time.Since(start)
				}
			}
			for i, v := range variants {
				b.ReportMetric(float64(spent[i].Nanoseconds())/float64(b.N*rows), "ns/row-"+v.name)
			}
		})
	}
}

// BenchmarkTriggerCheck measures the query a listener checks its
// connection and the triggers with, once a check interval (SyncInterval,
// 1s by default), against the empty query it pinged with before.
func BenchmarkTriggerCheck(b *testing.B) {
	_, _, raw := mustOpen(b)
	conn, err := raw.Acquire(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	for _, q := range []struct{ name, sql string }{{"check", pgdb.TriggerStateSQL}, {"ping", "-- ping"}} {
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rows, err := conn.Query(context.Background(), q.sql)
				if err != nil {
					b.Fatal(err)
				}
				for rows.Next() {
				}
				if err := rows.Err(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkApplyHistory measures what recording history costs a batch of
// Puts, round trip and commit included: one Put, as a lone Set sends it,
// and 8 of distinct keys, as the group commit of 8 concurrent Sets does;
// on a schema without the record triggers (as before version 3), on one
// with them for a namespace that keeps no history, and for one that
// does. Each iteration applies the batch to all three in turn, so that
// the machine's changing load weighs on each alike.
func BenchmarkApplyHistory(b *testing.B) {
	variants := []struct {
		name, sql string // run on the schema after Open
	}{
		{"no-record-triggers", `DROP TRIGGER operational_state_record ON operational_state;
			DROP TRIGGER operational_state_record_truncate ON operational_state`},
		{"without-history", ``},
		{"with-history", `INSERT INTO operational_state_history_keep VALUES ('ns', 1000)`},
	}
	for _, puts := range []int{1, 8} {
		b.Run(fmt.Sprintf("puts=%d", puts), func(b *testing.B) {
			dbs := make([]*pgdb.DB, len(variants))
			for i, v := range variants {
				var raw rawPool
				dbs[i], _, raw = mustOpen(b)
				if v.sql != "" {
					if _, err := raw.Exec(context.Background(), v.sql); err != nil {
						b.Fatal(err)
					}
				}
			}
			spent := make([]time.Duration, len(variants))
			ws := make([]storage.Write, puts)
			for i := range ws {
				ws[i] = storage.Write{Kind: storage.Put, Namespace: "ns", Key: fmt.Sprint("k", i), Actor: "bench"}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for n := 0; b.Loop(); n++ {
				for i := range ws {
					ws[i].Value = fmt.Sprint(n)
				}
				for i, db := range dbs {
					start := time.Now()
					if _, err := db.Apply(context.Background(), localNow(), ws); err != nil {
						b.Fatal(err)
					}
					spent[i] += time.Since(start)
				}
			}
			for i, v := range variants {
				b.ReportMetric(float64(spent[i].Microseconds())/float64(b.N), "µs/batch-"+v.name)
			}
		})
	}
}

// BenchmarkPruneHistory measures a PruneHistory that finds nothing to
// delete, as every sweep of a Store does once the history is within its
// keeps: 100 namespaces keeping 1000 changes, each holding 1000, so that
// the call walks every namespace and, in each, its keep newest changes.
func BenchmarkPruneHistory(b *testing.B) {
	db, _, raw := mustOpen(b)
	if _, err := raw.Exec(context.Background(), `
		INSERT INTO operational_state_history_keep SELECT 'ns' || n, 1000 FROM generate_series(1, 100) n;
		INSERT INTO operational_state_history (at, namespace, key, op, after)
			SELECT now(), 'ns' || n, 'k' || (i % 10), 'set', 'v' FROM generate_series(1, 100) n, generate_series(1, 1000) i;
		ANALYZE operational_state_history`); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		n, err := db.PruneHistory(context.Background(), 1024)
		if err != nil || n != 0 {
			b.Fatalf("PruneHistory = %d, %v; want 0", n, err)
		}
	}
}

// BenchmarkOriginStatement measures the statement every batch begins
// with, alone, autocommit: version 2's (it names the origin), version 3's
// of a sweep (and the actor) and of an Apply (and checks whether a
// namespace of the batch keeps history, to turn the record trigger off).
// Each iteration runs the three in turn on one connection.
func BenchmarkOriginStatement(b *testing.B) {
	_, _, raw := mustOpen(b)
	conn, err := raw.Acquire(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	variants := []struct {
		name string
		sql  string
		args []any
	}{
		{"v2", `SELECT set_config('opstate.origin', $1, true)`, []any{"origin"}},
		{"v3-sweep", pgdb.OriginSQL, []any{"origin", "actor"}},
		{"v3-apply", pgdb.ApplyOriginSQL, []any{"origin", "actor", []string{"ns"}}},
	}
	spent := make([]time.Duration, len(variants))
	b.ReportAllocs()
	for b.Loop() {
		for i, v := range variants {
			start := time.Now()
			if _, err := conn.Exec(context.Background(), v.sql, v.args...); err != nil {
				b.Fatal(err)
			}
			spent[i] += time.Since(start)
		}
	}
	for i, v := range variants {
		b.ReportMetric(float64(spent[i].Nanoseconds())/1000/float64(b.N), "µs-"+v.name)
	}
}
