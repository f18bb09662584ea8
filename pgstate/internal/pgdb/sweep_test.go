package pgdb_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate/pgstate/internal/pgdb"
	"github.com/d8da9184/opstate/storage"
)

// TestSweepConcurrent stores 3000 rows expired by the server's clock and
// 100 live ones, then sweeps from two DBs at once, each in batches of 50
// until it finds nothing: every expired row is returned by exactly one
// sweep, no live row is deleted, and neither sweep fails.
func TestSweepConcurrent(t *testing.T) {
	db1, dsn, raw := mustOpen(t)
	db2 := openDSN(t, dsn, pgdbOptions())
	ctx := context.Background()
	const expired, live = 3000, 100
	if _, err := raw.Exec(ctx, `INSERT INTO operational_state
		SELECT 'ns', 'e' || g, 'v', now(), now() - g * interval '1 millisecond' FROM generate_series(1, $1) g`, expired); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(ctx, `INSERT INTO operational_state
		SELECT 'ns', 'l' || g, 'v', now(), now() + interval '1 hour' FROM generate_series(1, $1) g`, live); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	got := make([][]storage.Key, 2)
	errs := make([]error, 2)
	for i, db := range []interface {
		DeleteExpired(context.Context, int64, int) ([]storage.Key, error)
	}{db1, db2} {
		wg.Go(func() {
			for {
				// A caller's clock two days ahead must not matter.
				keys, err := db.DeleteExpired(ctx, localNow()+2*24*time.Hour.Milliseconds(), 50)
				if err != nil {
					errs[i] = err
					return
				}
				if len(keys) == 0 {
					return
				}
				got[i] = append(got[i], keys...)
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("sweep %d: %v", i, err)
		}
	}
	seen := make(map[storage.Key]int)
	for _, keys := range got {
		for _, k := range keys {
			seen[k]++
		}
	}
	for i := 1; i <= expired; i++ {
		k := storage.Key{Namespace: "ns", Key: fmt.Sprint("e", i)}
		if seen[k] != 1 {
			t.Errorf("expired key %v returned %d times; want 1", k, seen[k])
		}
	}
	if n := len(got[0]) + len(got[1]); n != expired {
		t.Errorf("sweeps returned %d keys (%d + %d); want %d", n, len(got[0]), len(got[1]), expired)
	}
	var left int
	raw.QueryRow(ctx, `SELECT count(*) FROM operational_state`).Scan(&left)
	if left != live {
		t.Errorf("%d rows left; want the %d live ones", left, live)
	}
	t.Logf("sweeps returned %d and %d keys", len(got[0]), len(got[1]))
}

// TestSweepOrderAndLimit checks that a sweep deletes the earliest expired
// rows first, at most limit.
func TestSweepOrderAndLimit(t *testing.T) {
	db, _, raw := mustOpen(t)
	rawPut(t, raw, "ns", "late", "v", -time.Second)
	rawPut(t, raw, "ns", "early", "v", -time.Hour)
	keys, err := db.DeleteExpired(context.Background(), localNow(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := (storage.Key{Namespace: "ns", Key: "early"}); len(keys) != 1 || keys[0] != want {
		t.Errorf("DeleteExpired(limit 1) = %v; want [%v]", keys, want)
	}
}

// TestSweepSkipsLocked holds the lock of one expired row in a transaction
// behind the DB's back (another agent's sweep or write in progress): a
// sweep neither waits for it nor fails with ErrBusy, and deletes the other
// expired rows.
func TestSweepSkipsLocked(t *testing.T) {
	dsn, raw := server(t)
	db := openDSN(t, dsn, pgdb.Options{BusyTimeout: 50 * time.Millisecond})
	ctx := context.Background()
	rawPut(t, raw, "ns", "held", "v", -time.Hour)
	rawPut(t, raw, "ns", "free", "v", -time.Second)
	tx, err := raw.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT 1 FROM operational_state WHERE key = 'held' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	keys, err := db.DeleteExpired(ctx, localNow(), 10)
	if want := (storage.Key{Namespace: "ns", Key: "free"}); err != nil || len(keys) != 1 || keys[0] != want {
		t.Errorf("DeleteExpired with a row locked = %v, %v; want [%v], nil", keys, err, want)
	}
}
