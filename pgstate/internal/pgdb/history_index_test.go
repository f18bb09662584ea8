package pgdb_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/d8da9184/opstate/pgstate/internal/pgdb"
)

// historyIndexes returns the indexes of operational_state_history, each
// as its columns joined by commas, "primary " before a primary key's.
func historyIndexes(t *testing.T, raw rawPool) []string {
	t.Helper()
	rows, err := raw.Query(context.Background(), `SELECT i.indisprimary,
		array(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(n, o)
			JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o)
		FROM pg_index i WHERE i.indrelid = 'operational_state_history'::regclass`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var primary bool
		var cols []string
		if err := rows.Scan(&primary, &cols); err != nil {
			t.Fatal(err)
		}
		s := strings.Join(cols, ",")
		if primary {
			s = "primary " + s
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// oneIndex is what historyIndexes returns for this version's layout.
var oneIndex = []string{"primary namespace,seq"}

// v3Schema makes, on a new schema, what opstate's schema version 3 made.
func v3Schema(t *testing.T) (string, rawPool) {
	t.Helper()
	dsn, raw := server(t)
	m := pgdb.Migrations()
	rawExec(t, raw, m[0]+`; `+m[1]+`; `+m[2]+`; UPDATE operational_state_schema SET version = 3`)
	return dsn, raw
}

// TestHistoryOneIndex checks that a schema Open creates gives the history
// table one index, its primary key (namespace, seq): a recorded change
// costs a write one index entry, not three.
func TestHistoryOneIndex(t *testing.T) {
	_, _, raw := mustOpen(t)
	if got := historyIndexes(t, raw); !slices.Equal(got, oneIndex) {
		t.Errorf("indexes of operational_state_history = %q; want %q", got, oneIndex)
	}
}

// TestMigrateFromV3 opens a schema made by opstate's schema version 3,
// with history recorded in it: Open migrates it to this version, leaving
// the history table one index, its primary key (namespace, seq), and
// keeping every change with its seq; seq still comes from its sequence,
// owned by the column, above the migrated ones; History, a key's and a
// namespace's, and PruneHistory work on the migrated table.
func TestMigrateFromV3(t *testing.T) {
	dsn, raw := v3Schema(t)
	ctx := context.Background()
	rawExec(t, raw, `INSERT INTO operational_state_history_keep VALUES ('ns', 3), ('other', 10)`)
	for i := range 4 {
		rawPut(t, raw, "ns", "k", fmt.Sprint("v", i), 0)
		rawPut(t, raw, "other", fmt.Sprint("k", i), "w", 0)
	}
	if got := historyIndexes(t, raw); len(got) != 3 {
		t.Fatalf("indexes of version 3's history table = %q; want 3", got)
	}
	var seqs []int64
	if err := raw.QueryRow(ctx, `SELECT array_agg(seq ORDER BY seq) FROM operational_state_history`).Scan(&seqs); err != nil {
		t.Fatal(err)
	}

	db := openDSN(t, dsn, pgdb.Options{})
	var version int
	if err := raw.QueryRow(ctx, `SELECT version FROM operational_state_schema`).Scan(&version); err != nil || version != pgdb.SchemaVersion {
		t.Errorf("version after Open = %d, %v; want %d", version, err, pgdb.SchemaVersion)
	}
	if got := historyIndexes(t, raw); !slices.Equal(got, oneIndex) {
		t.Errorf("indexes of operational_state_history after the migration = %q; want %q", got, oneIndex)
	}
	var kept []int64
	if err := raw.QueryRow(ctx, `SELECT array_agg(seq ORDER BY seq) FROM operational_state_history`).Scan(&kept); err != nil || !slices.Equal(kept, seqs) {
		t.Errorf("seqs after the migration = %v, %v; want those before: %v", kept, err, seqs)
	}
	var owned bool
	if err := raw.QueryRow(ctx, `SELECT pg_get_serial_sequence('operational_state_history', 'seq') IS NOT NULL`).Scan(&owned); err != nil || !owned {
		t.Errorf("seq's sequence owned by the column: %v, %v; want true", owned, err)
	}

	rawPut(t, raw, "ns", "k", "after", 0)
	cs, err := db.History(ctx, "ns", "k", 0, 10)
	if err != nil || len(cs) != 5 || cs[0].After != "after" || cs[0].Seq <= seqs[len(seqs)-1] || cs[1].After != "v3" {
		t.Fatalf("History(ns, k) after the migration = %+v, %v; want 5 changes, the newest \"after\" with seq above %d", cs, err, seqs[len(seqs)-1])
	}
	if one, err := db.History(ctx, "ns", "k", cs[2].Seq+1, 1); err != nil || len(one) != 1 || one[0].Seq != cs[2].Seq {
		t.Errorf("History(ns, k) of change %d alone = %+v, %v; want it", cs[2].Seq, one, err)
	}
	if all, err := db.History(ctx, "other", "", 0, 10); err != nil || len(all) != 4 || all[0].Key != "k3" {
		t.Errorf("History(other) after the migration = %+v, %v; want its 4 changes, newest k3's", all, err)
	}
	if n, err := db.PruneHistory(ctx, 100); err != nil || n != 2 {
		t.Errorf("PruneHistory after the migration = %d, %v; want 2 (ns keeps 3 of 5)", n, err)
	}
	if left, err := db.History(ctx, "ns", "", 0, 10); err != nil || len(left) != 3 || left[0].After != "after" {
		t.Errorf("History(ns) after pruning = %+v, %v; want the newest 3", left, err)
	}
}

// TestMigrateV4Idempotent runs the migration to version 4 again, by
// hand, twice, on a schema it has brought to version 4 with history in
// it: it succeeds, leaves the primary key as it was (the same index, not
// rebuilt) and keeps what was recorded. Then it runs version 3's
// migration by hand on the schema at version 3 (as an operator could)
// and Open again: the indexes that re-creates are gone.
func TestMigrateV4Idempotent(t *testing.T) {
	db, dsn, raw := mustOpen(t)
	ctx := context.Background()
	setHistory(t, db, "ns", 10)
	rawPut(t, raw, "ns", "k", "v", 0)
	pkey := func() (oid uint32) {
		t.Helper()
		if err := raw.QueryRow(ctx, `SELECT conindid::oid FROM pg_constraint WHERE conrelid = 'operational_state_history'::regclass AND contype = 'p'`).Scan(&oid); err != nil {
			t.Fatal(err)
		}
		return oid
	}
	before := pkey()
	for range 2 {
		rawExec(t, raw, pgdb.Migrations()[3])
	}
	if after := pkey(); after != before {
		t.Errorf("primary key's index after the migration by hand = %d; want %d, left as it was", after, before)
	}
	if got := historyIndexes(t, raw); !slices.Equal(got, oneIndex) {
		t.Errorf("indexes after the migration by hand = %q; want %q", got, oneIndex)
	}
	if cs, err := db.History(ctx, "ns", "k", 0, 10); err != nil || len(cs) != 1 {
		t.Errorf("History after the migration by hand = %+v, %v; want the one change", cs, err)
	}
	rawExec(t, raw, pgdb.Migrations()[2]+`; UPDATE operational_state_schema SET version = 3`)
	if got := historyIndexes(t, raw); len(got) != 3 {
		t.Fatalf("indexes after version 3's migration by hand = %q; want 3", got)
	}
	openDSN(t, dsn, pgdb.Options{})
	if got := historyIndexes(t, raw); !slices.Equal(got, oneIndex) {
		t.Errorf("indexes after Open = %q; want %q", got, oneIndex)
	}
	rawPut(t, raw, "ns", "k", "w", 0)
	if cs, err := db.History(ctx, "ns", "k", 0, 10); err != nil || len(cs) != 2 {
		t.Errorf("History after one more change = %d changes, %v; want 2", len(cs), err)
	}
}

// TestMigrateFromV3HistoryDropped opens a schema of version 3 whose
// history tables an operator dropped: the migration to version 4 skips
// the missing table (it does not fail Open), and Open re-creates the
// tables, empty, with the one index.
func TestMigrateFromV3HistoryDropped(t *testing.T) {
	dsn, raw := v3Schema(t)
	rawExec(t, raw, `DROP TABLE operational_state_history, operational_state_history_keep`)
	db := openDSN(t, dsn, pgdb.Options{})
	if got := historyIndexes(t, raw); !slices.Equal(got, oneIndex) {
		t.Errorf("indexes of the re-created history table = %q; want %q", got, oneIndex)
	}
	setHistory(t, db, "ns", 10)
	rawPut(t, raw, "ns", "k", "v", 0)
	if cs, err := db.History(context.Background(), "ns", "k", 0, 10); err != nil || len(cs) != 1 {
		t.Errorf("History after the re-creation = %+v, %v; want the one change", cs, err)
	}
}
