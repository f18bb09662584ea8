package pgdb_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/d8da9184/opstate/storage"
)

// TestConditionalRace races eight Swaps of one key from old, from two DBs
// (two agents), for many rounds: in each, exactly one changes the row, and
// every loser's Held is the winner's value, read after its own statement
// decided, not a snapshot from before the winner committed. The same for
// PutIfAbsent of a missing key.
func TestConditionalRace(t *testing.T) {
	db1, dsn, raw := mustOpen(t)
	db2 := openDSN(t, dsn, pgdbOptions())
	dbs := []interface {
		Apply(context.Context, int64, []storage.Write) ([]storage.Result, error)
	}{db1, db2}
	ctx := context.Background()
	const racers, rounds = 8, 40
	for _, kind := range []storage.WriteKind{storage.Swap, storage.PutIfAbsent} {
		for r := range rounds {
			key := fmt.Sprint(kind, "/", r)
			if kind == storage.Swap {
				rawPut(t, raw, "ns", key, "old", 0)
			}
			ws := make([]storage.Write, racers)
			errs := make([]error, racers)
			res := make([]storage.Result, racers)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range ws {
				ws[i] = storage.Write{Kind: kind, Namespace: "ns", Key: key, Old: "old", Value: fmt.Sprint("g", i)}
				wg.Go(func() {
					<-start
					var rs []storage.Result
					if rs, errs[i] = dbs[i%2].Apply(ctx, localNow(), ws[i:i+1]); errs[i] == nil {
						res[i] = rs[0]
					}
				})
			}
			close(start)
			wg.Wait()
			winner := ""
			for i, w := range ws {
				if errs[i] != nil {
					t.Fatalf("round %s: Apply #%d: %v", key, i, errs[i])
				}
				if res[i].Changed {
					if winner != "" {
						t.Errorf("round %s: %s and %s both won", key, winner, w.Value)
					}
					winner = w.Value
				}
			}
			if winner == "" {
				t.Fatalf("round %s: nobody won", key)
			}
			for i, w := range ws {
				if r := res[i]; !r.Changed && (!r.Found || r.Held.Value != winner) {
					t.Errorf("round %s: loser %s saw Found %v, Held %q; want the winner's %q", key, w.Value, r.Found, r.Held.Value, winner)
				}
			}
			checkState(t, raw, "ns", key, true, winner, 0)
		}
	}
}
