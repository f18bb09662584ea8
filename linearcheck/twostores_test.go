package linearcheck

import (
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// span is when a call ran, in nanoseconds of the monotonic clock since the
// test began: call is read before the call, ret after it returned.
type span struct{ call, ret int64 }

// read is one Lookup in TestTwoStores.
type read struct {
	span
	store int // index of the Store read through
	key   int // index of the writer whose key was read
	n     int // the value read: the writer's n-th write, or 0 for absent
}

// TestTwoStores checks what opstate promises for two Stores on one file in
// one process. They are not linearizable together — a Store notices the
// other's commits only at its next SyncInterval check — so porcupine has
// nothing to accept here; the test checks the documented bound instead.
//
// Two writers, one per Store, each write the numbers 1, 2, 3, ... to a key
// of their own, through their own Store, while six readers read both keys
// through both Stores. The first write is a SetIfAbsent, every even one a
// CompareAndSwap from the number before, the others Sets: each conditional
// write must succeed, and its value is bound like any other's. For every
// read:
//
//   - it returns no write that had not been called when the read returned;
//   - through the writer's Store, it returns the last write that returned
//     before the read was called, or a later one (read-your-writes, as in
//     TestLinearizable);
//   - through the other Store, it returns the last write that returned at
//     least SyncInterval + slack before the read was called, or a later one.
//     The slack, 250ms as in the root module's coherence tests, absorbs
//     scheduling delays under the race detector on a loaded machine; the
//     tight bound is measured by opstate's BenchmarkForeignWriteStaleness,
//     not here.
//
// Both writers also write a shared key. Once everything has returned and
// one bound has passed, both Stores and a third one opened afterwards must
// read the same value for every key, and it must be a last write.
func TestTwoStores(t *testing.T) {
	const (
		syncInterval = 20 * time.Millisecond
		slack        = 250 * time.Millisecond
		bound        = syncInterval + slack
		writes       = 80 // per writer
		pause        = 3 * time.Millisecond
		readers      = 3 // per Store
	)
	path := filepath.Join(t.TempDir(), "state.db")
	opts := opstate.Options{SyncInterval: syncInterval}
	stores := []*opstate.Store{mustOpenPath(t, path, opts), mustOpenPath(t, path, opts)}
	const ns = "two"
	keys := []string{"by0", "by1"}
	const shared = "both"

	begin := time.Now()
	now := func() int64 { return int64(time.Since(begin)) } // monotonic

	// spans[w][n] is writer w's n-th write; spans[w][0] is unused.
	spans := [][]span{make([]span, writes+1), make([]span, writes+1)}
	var writers sync.WaitGroup
	for w := range stores {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for n := 1; n <= writes; n++ {
				call := now()
				var (
					ok  = true
					err error
				)
				switch v := strconv.Itoa(n); {
				case n == 1:
					ok, err = stores[w].SetIfAbsent(ns, keys[w], v)
				case n%2 == 0:
					ok, err = stores[w].CompareAndSwap(ns, keys[w], strconv.Itoa(n-1), v)
				default:
					err = stores[w].Set(ns, keys[w], v)
				}
				spans[w][n] = span{call, now()}
				if err == nil && !ok {
					err = fmt.Errorf("the conditional write of %d to %q, which only this writer writes, changed nothing", n, keys[w])
				}
				if err == nil {
					err = stores[w].Set(ns, shared, fmt.Sprintf("w%d-%d", w, n))
				}
				if err != nil {
					t.Errorf("writer %d, write %d: %v", w, n, err)
					return
				}
				time.Sleep(pause)
			}
		}()
	}

	done := make(chan struct{})
	var readersWG sync.WaitGroup
	logs := make([][]read, 2*readers)
	for g := range logs {
		r := g % 2 // the Store this reader reads through
		readersWG.Add(1)
		go func() {
			defer readersWG.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				k := (i + g/2) % 2
				call := now()
				v, ok, err := stores[r].Lookup(ns, keys[k])
				ret := now()
				if err != nil {
					t.Errorf("reader %d: Lookup(%q, %q): %v", g, ns, keys[k], err)
					return
				}
				n := 0
				if ok {
					if n, err = strconv.Atoi(v); err != nil || n < 1 || n > writes {
						t.Errorf("reader %d: Lookup(%q, %q) = %q; want a number in [1, %d]", g, ns, keys[k], v, writes)
						return
					}
				}
				logs[g] = append(logs[g], read{span: span{call, ret}, store: r, key: k, n: n})
				time.Sleep(100 * time.Microsecond)
			}
		}()
	}
	writers.Wait()
	close(done)
	readersWG.Wait()
	if t.Failed() {
		t.FailNow()
	}

	var (
		total, bound0, boundOther int
		maxLag                    time.Duration
	)
	for _, log := range logs {
		for _, rd := range log {
			total++
			ws := spans[rd.key]
			if rd.n > 0 && ws[rd.n].call > rd.ret {
				t.Errorf("store %d read %s = %d during [%v, %v]; write %d was called only at %v",
					rd.store, keys[rd.key], rd.n, time.Duration(rd.call), time.Duration(rd.ret), rd.n, time.Duration(ws[rd.n].call))
			}
			lagAllowed := bound
			if rd.store == rd.key {
				lagAllowed = 0
			}
			// want is the oldest write the read may return.
			want := 0
			for n := 1; n <= writes && ws[n].ret+int64(lagAllowed) < rd.call; n++ {
				want = n
			}
			if want > 0 {
				if rd.store == rd.key {
					bound0++
				} else {
					boundOther++
				}
			}
			if rd.n < want {
				t.Errorf("store %d read %s = %d at %v; want >= %d (write %d returned at %v, allowed lag %v)",
					rd.store, keys[rd.key], rd.n, time.Duration(rd.call), want, want, time.Duration(ws[want].ret), lagAllowed)
			}
			// The lag of a read: how long the first write it missed had
			// returned when the read began.
			if rd.store != rd.key && rd.n < writes && ws[rd.n+1].ret < rd.call {
				maxLag = max(maxLag, time.Duration(rd.call-ws[rd.n+1].ret))
			}
		}
	}
	t.Logf("%d reads; %d through the writer's Store and %d through the other had a write they must see; largest lag through the other Store %v (allowed %v)",
		total, bound0, boundOther, maxLag, bound)
	if bound0 == 0 || boundOther == 0 {
		t.Errorf("no read was bound to see a write through the writer's Store (%d) or the other (%d); the test proves nothing", bound0, boundOther)
	}

	time.Sleep(bound)
	third := mustOpenPath(t, path, opts)
	for _, key := range []string{keys[0], keys[1], shared} {
		var got [3]string
		for i, s := range []*opstate.Store{stores[0], stores[1], third} {
			v, ok, err := s.Lookup(ns, key)
			if err != nil || !ok {
				t.Fatalf("store %d: Lookup(%q, %q) = %q, %v, %v; want a value", i, ns, key, v, ok, err)
			}
			got[i] = v
		}
		if got[0] != got[1] || got[1] != got[2] {
			t.Errorf("Lookup(%q, %q) through the two Stores and a new one = %q; want one value", ns, key, got)
		}
		last := map[string]bool{strconv.Itoa(writes): true}
		if key == shared {
			last = map[string]bool{fmt.Sprintf("w0-%d", writes): true, fmt.Sprintf("w1-%d", writes): true}
		}
		if !last[got[2]] {
			t.Errorf("Lookup(%q, %q) = %q at the end; want a last write", ns, key, got[2])
		}
	}
}
