package linearcheck

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// kv is what a workload drives: an *opstate.Store, or staleStore, which
// breaks one on purpose.
type kv interface {
	Lookup(namespace, key string) (string, bool, error)
	Set(namespace, key, value string) error
	SetWithTTL(namespace, key, value string, ttl time.Duration) error
	Delete(namespace, key string) error
}

// clock is a clock the test moves by hand; Now is safe for concurrent use
// and is what the Stores get as Options.Clock.
type clock struct {
	nanos atomic.Int64 // Unix nanoseconds
}

func newClock() *clock {
	c := &clock{}
	c.nanos.Store(epoch.UnixNano())
	return c
}

func (c *clock) Now() time.Time { return time.Unix(0, c.nanos.Load()) }

// checkedKeys are the keys whose histories are checked: two namespaces,
// and one key name in both.
var checkedKeys = []keyID{{"a", "k1"}, {"a", "k2"}, {"b", "k1"}}

// workload describes a history: Clients goroutines run OpsPerPhase calls
// each in every one of Phases phases. The clock stands still within a
// phase; between phases, when no call is in flight, it moves forward by
// Step.
type workload struct {
	Clients     int
	Phases      int
	OpsPerPhase int
	Step        time.Duration // a whole number of milliseconds
	// Mix is the percentage of Lookup, Set, SetWithTTL and Delete calls,
	// in that order; it sums to 100.
	Mix [4]int
}

// standard is the workload of most variants: 8 clients × 8 phases × 10
// calls = 640 operations, about 213 per key, 45% of them reads.
var standard = workload{Clients: 8, Phases: 8, OpsPerPhase: 10, Step: 10 * time.Millisecond, Mix: [4]int{45, 20, 23, 12}}

// expiring is standard with fewer writes, most of them with a TTL, so that
// expired rows live long enough into a phase for sweeps to race reads and
// writes of the same keys.
var expiring = workload{Clients: 8, Phases: 8, OpsPerPhase: 10, Step: 10 * time.Millisecond, Mix: [4]int{75, 3, 20, 2}}

// ttls are the TTLs SetWithTTL uses, for a phase step of step: expiring at
// the next boundary (1ms, step-1ms), exactly on it (step: the key must read
// as missing from the next phase on), one boundary later (step+1ms), three
// boundaries later (3×step: again exactly on a boundary), and never within
// a history.
func ttls(step time.Duration) []time.Duration {
	return []time.Duration{time.Millisecond, step - time.Millisecond, step, step + time.Millisecond, 3 * step, time.Hour}
}

// rounds returns how many histories each variant checks: 20, or
// $LINEARCHECK_ROUNDS for a longer hunt.
func rounds(t *testing.T) int {
	s := os.Getenv("LINEARCHECK_ROUNDS")
	if s == "" {
		return 20
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("LINEARCHECK_ROUNDS=%q: want a positive integer", s)
	}
	return n
}

// run runs w against s, whose clock is clk, and returns the history of the
// checked keys. Timestamps come from one atomic counter: a call's stamp is
// taken before the call and its return's stamp after it returned, so when
// one operation's return stamp is below another's call stamp, the first
// really ended before the second began. Any error fails the test.
func (w workload) run(t *testing.T, s kv, clk *clock, seed uint64) []porcupine.Operation {
	t.Helper()
	var stamps atomic.Int64
	stamp := func() int64 { return stamps.Add(1) }
	// writes counts the writes of each key, to make every value unique.
	// The first write of a key stores the empty string, which a Lookup
	// must tell from a missing key.
	writes := make([]atomic.Int64, len(checkedKeys))
	value := func(k int) string {
		n := writes[k].Add(1)
		if n == 1 {
			return ""
		}
		return fmt.Sprintf("%s/%s#%d", checkedKeys[k].ns, checkedKeys[k].key, n)
	}
	durations := ttls(w.Step)

	histories := make([][]porcupine.Operation, w.Clients)
	for phase := range w.Phases {
		now := clk.nanos.Load()
		start := make(chan struct{})
		var wg sync.WaitGroup
		for c := range w.Clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(seed, uint64(phase*w.Clients+c)))
				<-start
				for range w.OpsPerPhase {
					k := rng.IntN(len(checkedKeys))
					ns, key := checkedKeys[k].ns, checkedKeys[k].key
					in := input{NS: ns, Key: key}
					var (
						out       output
						err       error
						call, ret int64
					)
					switch r := rng.IntN(100); {
					case r < w.Mix[0]:
						in.Kind, in.Now = opGet, now
						call = stamp()
						out.Value, out.OK, err = s.Lookup(ns, key)
						ret = stamp()
					case r < w.Mix[0]+w.Mix[1]:
						in.Kind, in.Value = opSet, value(k)
						call = stamp()
						err = s.Set(ns, key, in.Value)
						ret = stamp()
					case r < w.Mix[0]+w.Mix[1]+w.Mix[2]:
						ttl := durations[rng.IntN(len(durations))]
						in.Kind, in.Value, in.Expires = opSetTTL, value(k), now+int64(ttl)
						call = stamp()
						err = s.SetWithTTL(ns, key, in.Value, ttl)
						ret = stamp()
					default:
						in.Kind = opDelete
						call = stamp()
						err = s.Delete(ns, key)
						ret = stamp()
					}
					if err != nil {
						t.Errorf("client %d, phase %d: %s: %v", c, phase, model.DescribeOperation(in, out), err)
						return
					}
					histories[c] = append(histories[c], porcupine.Operation{
						ClientId: c, Input: in, Call: call, Output: out, Return: ret,
					})
				}
			}()
		}
		close(start)
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		// No recorded call is in flight: the clock may move.
		clk.nanos.Add(int64(w.Step))
	}
	var all []porcupine.Operation
	for _, h := range histories {
		all = append(all, h...)
	}
	return all
}

// background runs f in a goroutine, over and over, until the returned
// function is called; that function waits for f's last call to return.
func background(f func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
				f()
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}
