package pgdb_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/d8da9184/opstate/pgstate/internal/pgdb"
	"github.com/d8da9184/opstate/pgstate/internal/pgtest"
	"github.com/d8da9184/opstate/storage"
)

// TestApplyCanceledVerdict attacks the promise that an Apply ended by its
// context reports the server's verdict: an error matching the context's
// only when the batch was rolled back, nil when it committed. Round after
// round, a batch waits for a row another session locks, and the other
// session's rollback (which lets the batch commit) and the end of the
// batch's context come at nearly the same moment, in either order. Once
// the batch's session is idle again, the row must hold the batch's value
// exactly when Apply returned nil.
func TestApplyCanceledVerdict(t *testing.T) {
	dsn, raw := server(t)
	b := make([]byte, 6)
	rand.Read(b)
	app := "opstate_verdict_" + hex.EncodeToString(b)
	db := openDSN(t, pgtest.WithParam(dsn, "application_name", app), pgdb.Options{BusyTimeout: time.Minute})
	rawPut(t, raw, "ns", "k", "v0", 0)
	ctx := context.Background()
	rng := mrand.New(mrand.NewPCG(3, 4))
	const rounds = 60
	verdicts := map[string]int{}
	for i := range rounds {
		tx, err := raw.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM operational_state WHERE namespace = 'ns' AND key = 'k' FOR UPDATE`); err != nil {
			t.Fatal(err)
		}
		actx, cancel := context.WithCancel(ctx)
		value := fmt.Sprint("r", i)
		done := make(chan error, 1)
		go func() {
			_, err := db.Apply(actx, localNow(), []storage.Write{putW("ns", "k", value, 0, localNow())})
			done <- err
		}()
		waitSessions(t, raw, app, "AND wait_event_type = 'Lock'", func(n int) bool { return n > 0 })
		// Rollback and cancel, 0 to 2 ms apart, in either order.
		gap := time.Duration(rng.IntN(2000)) * time.Microsecond
		released := make(chan struct{})
		if i%2 == 0 {
			tx.Rollback(ctx)
			close(released)
			time.Sleep(gap)
			cancel()
		} else {
			go func() {
				defer close(released)
				time.Sleep(gap)
				tx.Rollback(ctx)
			}()
			cancel()
		}
		err = <-done
		<-released
		waitSessions(t, raw, app, "AND state <> 'idle'", func(n int) bool { return n == 0 })
		got, _, _ := rawGet(t, raw, "ns", "k")
		applied := got == value
		switch {
		case err == nil && applied:
			verdicts["committed"]++
		case errors.Is(err, context.Canceled) && !applied:
			verdicts["canceled"]++
		case errors.Is(err, storage.ErrBusy) && !applied:
			verdicts["busy"]++
		default:
			t.Errorf("round %d: Apply = %v, and the row holds %q (its value %q): applied %v", i, err, got, value, applied)
		}
	}
	t.Logf("verdicts: %v", verdicts)
}

// waitSessions waits, up to 10 s, until the number of the server's
// sessions named app that meet cond (SQL that begins with AND) satisfies
// ok.
func waitSessions(t *testing.T, raw rawPool, app, cond string, ok func(int) bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		var n int
		if err := raw.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 `+cond, app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if ok(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions %s %s: %d after 10s", app, cond, n)
		}
	}
}
