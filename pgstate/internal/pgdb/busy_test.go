package pgdb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/d8da9184/opstate/pgstate/internal/pgdb"
	"github.com/d8da9184/opstate/storage"
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
	for _, w := range []storage.Write{putW("ns", "k", "new", 0, now), {Kind: storage.Swap, Namespace: "ns", Key: "k", Old: "v", Value: "x"}} {
		start := time.Now()
		_, err := db.Apply(ctx, now, []storage.Write{w})
		if !errors.Is(err, storage.ErrBusy) {
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

// TestDeadlockBusy makes a batch the victim of a deadlock: it holds b and
// waits for a, which a transaction behind its back holds while it waits
// for b (with a longer deadlock_timeout, so that the batch's backend is
// the one that finds the cycle). Apply fails with ErrBusy and applied
// nothing.
func TestDeadlockBusy(t *testing.T) {
	dsn, raw := server(t)
	db := openDSN(t, dsn, pgdb.Options{BusyTimeout: time.Minute})
	ctx := context.Background()
	rawPut(t, raw, "ns", "a", "v", 0)
	tx, err := raw.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SET LOCAL deadlock_timeout = '30s'`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM operational_state WHERE key = 'a' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	now := localNow()
	done := make(chan error, 1)
	go func() {
		_, err := db.Apply(ctx, now, []storage.Write{putW("ns", "b", "batch", 0, now), putW("ns", "a", "batch", 0, now)})
		done <- err
	}()
	// Wait until the batch waits for a.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var waiting int
		if err := raw.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the batch never waited for the lock on a")
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO operational_state VALUES ('ns', 'b', 'tx', now(), NULL)`); err != nil {
		t.Fatalf("the transaction's insert of b: %v", err)
	}
	if err := <-done; !errors.Is(err, storage.ErrBusy) {
		t.Errorf("Apply of a deadlock victim = %v; want ErrBusy", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	checkState(t, raw, "ns", "b", true, "tx", 0)
	checkState(t, raw, "ns", "a", true, "v", 0)
}
