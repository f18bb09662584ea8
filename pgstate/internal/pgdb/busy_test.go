package pgdb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/d8da9184/opstate/persist"
	"github.com/d8da9184/opstate/pgstate/internal/pgdb"
)

// TestBusy holds a row lock in a transaction behind the DB's back: a write
// to that row waits BusyTimeout and fails with ErrBusy, and once the lock
// is released the write succeeds.
func TestBusy(t *testing.T) {
	dsn, raw := server(t)
	db := openDSN(t, dsn, pgdb.Options{BusyTimeout: 100 * time.Millisecond})
	ctx := context.Background()
	rawPut(t, raw, "ns", "k", "v", 0)
	tx, err := raw.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM operational_state WHERE namespace = 'ns' AND key = 'k' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	now := localNow()
	for _, w := range []*persist.Write{putW("ns", "k", "new", 0, now), {Kind: persist.Swap, Namespace: "ns", Key: "k", Old: "v", Value: "x"}} {
		start := time.Now()
		err := db.Apply(ctx, now, []*persist.Write{w})
		if !errors.Is(err, persist.ErrBusy) {
			t.Errorf("Apply(kind %d) on a locked row = %v; want ErrBusy", w.Kind, err)
		}
		if d := time.Since(start); d < 100*time.Millisecond {
			t.Errorf("Apply failed after %v; want it to wait the busy timeout, 100ms", d)
		}
	}
	tx.Rollback(ctx)
	apply(t, db, now, putW("ns", "k", "new", 0, now))
	checkState(t, raw, "ns", "k", true, "new", 0)
}
