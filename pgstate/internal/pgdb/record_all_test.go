package pgdb_test

import (
	"context"
	"testing"

	"github.com/d8da9184/opstate/pgstate/internal/pgdb"
	"github.com/jackc/pgx/v5"
)

// TestApplyOriginRecordSetting runs the first statement of an Apply's
// batch for sets of namespaces and reads what it set opstate.record to:
// 'off' when none keeps history, 'all' when the batch has one namespace
// and it does (the record function records each row without probing
// the keep table), 'on' when it has several and some do (it probes for
// each row).
func TestApplyOriginRecordSetting(t *testing.T) {
	db, _, raw := mustOpen(t)
	setHistory(t, db, "h1", 10)
	setHistory(t, db, "h2", 10)
	ctx := context.Background()
	for _, tc := range []struct {
		namespaces []string
		want       string
	}{
		{[]string{"plain"}, "off"},
		{[]string{"plain", "other"}, "off"},
		{[]string{"h1"}, "all"},
		{[]string{"h1", "h2"}, "on"},
		{[]string{"h1", "plain"}, "on"},
		{[]string{"plain", "h2", "h1"}, "on"},
		{[]string{}, "off"},
	} {
		var got string
		err := pgx.BeginFunc(ctx, raw, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, pgdb.ApplyOriginSQL, "origin", "actor", tc.namespaces); err != nil {
				return err
			}
			return tx.QueryRow(ctx, `SELECT current_setting('opstate.record')`).Scan(&got)
		})
		if err != nil || got != tc.want {
			t.Errorf("opstate.record after the first statement of a batch of %q = %q, %v; want %q", tc.namespaces, got, err, tc.want)
		}
	}
}

// TestHistoryRecordAll writes by plain SQL, in transactions that set
// opstate.record as a batch's first statement does, to a namespace that
// keeps no history: with 'all' the record function records the row
// without asking the keep table, with 'on' it asks and records nothing.
func TestHistoryRecordAll(t *testing.T) {
	db, _, raw := mustOpen(t)
	ctx := context.Background()
	for _, tc := range []struct {
		record string
		want   int
	}{{"on", 0}, {"all", 1}} {
		rawExec(t, raw, `BEGIN; SELECT set_config('opstate.record', '`+tc.record+`', true);
			INSERT INTO operational_state VALUES ('plain', '`+tc.record+`', 'v', now(), NULL); COMMIT`)
		if cs, err := db.History(ctx, "plain", tc.record, 0, 10); err != nil || len(cs) != tc.want {
			t.Errorf("History of a write with opstate.record = %q to a namespace without history = %d changes, %v; want %d", tc.record, len(cs), err, tc.want)
		}
	}
}
