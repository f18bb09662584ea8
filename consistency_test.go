package opstate_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// TestFailedWriteNeverServed holds the write lock from another connection
// so that writes time out, and checks that the old value stays served,
// from the cache and from SQLite.
func TestFailedWriteNeverServed(t *testing.T) {
	cacheModes(t, func(t *testing.T, opts opstate.Options) {
		path := dbPath(t)
		opts.BusyTimeout = 50 * time.Millisecond
		s := mustOpen(t, path, opts)
		mustSet(t, s, "ns", "k", "old")
		mustSet(t, s, "ns", "gone", "still here")
		wantGet(t, s, "ns", "k", "old", true)

		ctx := context.Background()
		conn, err := sqlDB(t, path).Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		writes := map[string]error{
			"Set":             s.Set("ns", "k", "new"),
			"SetWithTTL":      s.SetWithTTL("ns", "k", "new", time.Hour),
			"Delete":          s.Delete("ns", "gone"),
			"DeleteNamespace": s.DeleteNamespace("ns"),
		}
		for name, err := range writes {
			if !errors.Is(err, opstate.ErrBusy) {
				t.Errorf("%s under a foreign write lock = %v; want ErrBusy", name, err)
			}
		}
		// Reads are served while the lock is held.
		wantGet(t, s, "ns", "k", "old", true)
		wantGet(t, s, "ns", "gone", "still here", true)
		if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		wantGet(t, s, "ns", "k", "old", true)
		wantGet(t, s, "ns", "gone", "still here", true)
	})
}

// TestRacingSetsAgree races Sets on one key and checks that the cache ends
// up holding what SQLite holds.
func TestRacingSetsAgree(t *testing.T) {
	path := dbPath(t)
	s := mustOpen(t, path, opstate.Options{})
	db := sqlDB(t, path)
	for round := range 50 {
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				if err := s.Set("ns", "k", fmt.Sprintf("r%d-g%d", round, g)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		var onDisk string
		if err := db.QueryRow(`SELECT value FROM operational_state WHERE namespace='ns' AND key='k'`).Scan(&onDisk); err != nil {
			t.Fatal(err)
		}
		wantGet(t, s, "ns", "k", onDisk, true)
	}
}

// TestReadAfterWrite checks per-key linearizability against a writer: once
// Set(i) has returned, no Get that starts later returns an older value,
// including Gets that miss the cache because a tiny budget keeps evicting.
func TestReadAfterWrite(t *testing.T) {
	for _, budget := range []int64{0, 600, -1} {
		t.Run(fmt.Sprint("budget=", budget), func(t *testing.T) {
			s := mustOpen(t, dbPath(t), opstate.Options{CacheBytes: budget})
			var acked atomic.Int64
			acked.Store(-1)
			const writes = 300
			done := make(chan struct{})
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					for {
						select {
						case <-done:
							return
						default:
						}
						floor := acked.Load()
						v, err := s.Get("ns", "k")
						if err != nil {
							t.Error(err)
							return
						}
						var got int64 = -1
						if v != "" {
							fmt.Sscan(v, &got)
						}
						if got < floor {
							t.Errorf("Get = %d after Set(%d) returned", got, floor)
							return
						}
						// Churn other keys so that k is evicted.
						s.Get("ns", fmt.Sprint("other", floor%7))
					}
				})
			}
			for i := range int64(writes) {
				if err := s.Set("ns", "k", fmt.Sprint(i)); err != nil {
					t.Fatal(err)
				}
				acked.Store(i)
				if i%3 == 0 {
					s.Set("ns", fmt.Sprint("other", i%7), strings.Repeat("x", 100))
				}
			}
			close(done)
			wg.Wait()
		})
	}
}

// TestBadWriteFailsAlone makes one key unwritable (an operator's trigger
// refuses it) while writers keep writing other keys at once, so that their
// writes share transactions with the refused ones: only the refused write
// may fail.
func TestBadWriteFailsAlone(t *testing.T) {
	path := dbPath(t)
	s := mustOpen(t, path, opstate.Options{})
	if _, err := sqlDB(t, path).Exec(`CREATE TRIGGER refuse_poison BEFORE INSERT ON operational_state
		WHEN NEW.key = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned key'); END`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				if g == 0 {
					if err := s.Set("ns", "poison", "x"); err == nil {
						t.Error("Set(poison) = nil; want the trigger's error")
					}
					continue
				}
				if err := s.Set("ns", fmt.Sprint(g, "-", i), "v"); err != nil {
					t.Errorf("Set(%d-%d) = %v; want nil (only the poisoned key fails)", g, i, err)
				}
			}
		})
	}
	wg.Wait()
	m, err := s.List("ns")
	if err != nil || len(m) != 7*40 {
		t.Errorf("List = %d keys, %v; want %d", len(m), err, 7*40)
	}
	wantGet(t, s, "ns", "poison", "", false)
	batches, writes := s.Batches()
	t.Logf("%d writes in %d transactions", writes, batches)
}
