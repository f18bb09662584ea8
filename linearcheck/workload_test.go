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
	SetIfAbsent(namespace, key, value string) (bool, error)
	SetIfAbsentWithTTL(namespace, key, value string, ttl time.Duration) (bool, error)
	CompareAndSwap(namespace, key, old, new string) (bool, error)
	CompareAndSwapWithTTL(namespace, key, old, new string, ttl time.Duration) (bool, error)
	CompareAndDelete(namespace, key, old string) (bool, error)
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
	// Mix is the percentage of calls of each kind, indexed by kind: Lookup,
	// Set, SetWithTTL, Delete, SetIfAbsent, SetIfAbsentWithTTL,
	// CompareAndSwap, CompareAndSwapWithTTL, CompareAndDelete. It sums to
	// 100.
	Mix [kinds]int
}

// kinds is the number of operation kinds.
const kinds = int(opCAD) + 1

// standard is the workload of most variants: 8 clients × 8 phases × 10
// calls = 640 operations, about 213 per key, 40% of them reads, 27%
// conditional writes.
var standard = workload{Clients: 8, Phases: 8, OpsPerPhase: 10, Step: 10 * time.Millisecond,
	Mix: [kinds]int{40, 12, 14, 7, 6, 6, 6, 5, 4}}

// expiring is standard with fewer writes, most of them with a TTL, so that
// expired rows live long enough into a phase for sweeps to race reads and
// writes of the same keys, SetIfAbsent over expired rows included.
var expiring = workload{Clients: 8, Phases: 8, OpsPerPhase: 10, Step: 10 * time.Millisecond,
	Mix: [kinds]int{70, 2, 12, 1, 2, 7, 1, 4, 1}}

// pick returns a kind drawn from the mix.
func (w workload) pick(rng *rand.Rand) kind {
	r := rng.IntN(100)
	for k, p := range w.Mix {
		if r < p {
			return kind(k)
		}
		r -= p
	}
	panic(fmt.Sprintf("linearcheck: mix %v does not sum to 100", w.Mix))
}

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

// run runs w against stores, whose clock is clk, and returns the history of
// the checked keys; client c calls stores[c%len(stores)]. Timestamps come
// from one atomic counter: a call's stamp is taken before the call and its
// return's stamp after it returned, so when one operation's return stamp is
// below another's call stamp, the first really ended before the second
// began. Any error fails the test.
//
// CompareAndSwap and CompareAndDelete need old values that sometimes match:
// a client passes, at random, the last value it saw of the key (read, or
// written by itself) or the value of the write of the key called last by
// any client.
func (w workload) run(t *testing.T, stores []kv, clk *clock, seed uint64) []porcupine.Operation {
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
	// latest is the value of the write of each key called last.
	latest := make([]atomic.Pointer[string], len(checkedKeys))
	// seen[c][k] is the last value client c saw of key k, if any.
	type sight struct {
		value string
		ok    bool
	}
	seen := make([][]sight, w.Clients)
	for c := range seen {
		seen[c] = make([]sight, len(checkedKeys))
	}

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
				s := stores[c%len(stores)]
				for range w.OpsPerPhase {
					k := rng.IntN(len(checkedKeys))
					ns, key := checkedKeys[k].ns, checkedKeys[k].key
					in := input{NS: ns, Key: key, Kind: w.pick(rng)}
					if in.Kind == opGet || in.Kind.conditional() {
						in.Now = now
					}
					if in.Kind != opGet && in.Kind != opDelete && in.Kind != opCAD {
						v := value(k)
						in.Value = v
						latest[k].Store(&v)
					}
					var ttl time.Duration
					if in.Kind.hasTTL() {
						ttl = durations[rng.IntN(len(durations))]
						in.Expires = now + int64(ttl)
					}
					if in.Kind == opCAS || in.Kind == opCASTTL || in.Kind == opCAD {
						if sg := seen[c][k]; sg.ok && rng.IntN(2) == 0 {
							in.Old = sg.value
						} else if l := latest[k].Load(); l != nil {
							in.Old = *l
						}
					}
					var (
						out       output
						err       error
						call, ret int64
					)
					call = stamp()
					switch in.Kind {
					case opGet:
						out.Value, out.OK, err = s.Lookup(ns, key)
					case opSet:
						err = s.Set(ns, key, in.Value)
					case opSetTTL:
						err = s.SetWithTTL(ns, key, in.Value, ttl)
					case opDelete:
						err = s.Delete(ns, key)
					case opSetIfAbsent:
						out.OK, err = s.SetIfAbsent(ns, key, in.Value)
					case opSetIfAbsentTTL:
						out.OK, err = s.SetIfAbsentWithTTL(ns, key, in.Value, ttl)
					case opCAS:
						out.OK, err = s.CompareAndSwap(ns, key, in.Old, in.Value)
					case opCASTTL:
						out.OK, err = s.CompareAndSwapWithTTL(ns, key, in.Old, in.Value, ttl)
					case opCAD:
						out.OK, err = s.CompareAndDelete(ns, key, in.Old)
					}
					ret = stamp()
					switch {
					case in.Kind == opGet:
						seen[c][k] = sight{out.Value, out.OK}
					case in.Kind == opDelete || in.Kind == opCAD && out.OK:
						seen[c][k] = sight{}
					case !in.Kind.conditional() || out.OK:
						seen[c][k] = sight{in.Value, true}
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

// outcomes counts, for each conditional kind, the calls of history that
// changed their key ([k][1]) and those that did not ([k][0]).
func outcomes(history []porcupine.Operation) (n [kinds][2]int) {
	for _, op := range history {
		if in := op.Input.(input); in.Kind.conditional() {
			if op.Output.(output).OK {
				n[in.Kind][1]++
			} else {
				n[in.Kind][0]++
			}
		}
	}
	return n
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
