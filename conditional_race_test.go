package opstate_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/d8da9184/opstate"
)

// condRaceRounds is how many rounds TestConditionalRace runs in each
// configuration; each round is one SetIfAbsent race and one CompareAndSwap
// race.
const condRaceRounds = 200

// condRaceDBEnv names the database of the condrace child.
const condRaceDBEnv = "OPSTATE_CONDRACE_DB"

func init() { childRoles["condrace"] = condRaceChild }

// racers are goroutines that race one conditional write per call of race,
// through the Stores they are spread over.
type racers struct {
	stores []*opstate.Store
	names  []string // racer i is names[i], on stores[i%len(stores)]
}

func newRacers(prefix string, n int, stores ...*opstate.Store) racers {
	r := racers{stores: stores}
	for i := range n {
		r.names = append(r.names, fmt.Sprintf("%s%d", prefix, i))
	}
	return r
}

// race releases every racer at once to call op (SetIfAbsent, or
// CompareAndSwap from old) on ns/key, each with a value of its own, and
// returns the values of the calls that reported a change.
func (r racers) race(op, ns, key, old string) ([]string, error) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	won := make([]bool, len(r.names))
	errs := make([]error, len(r.names))
	for i, name := range r.names {
		s := r.stores[i%len(r.stores)]
		wg.Go(func() {
			<-start
			switch op {
			case "sia":
				won[i], errs[i] = s.SetIfAbsent(ns, key, name)
			case "cas":
				won[i], errs[i] = s.CompareAndSwap(ns, key, old, name+"-cas")
			default:
				errs[i] = fmt.Errorf("unknown race %q", op)
			}
		})
	}
	close(start)
	wg.Wait()
	var winners []string
	for i, name := range r.names {
		if errs[i] != nil {
			return nil, fmt.Errorf("%s: %s %s/%s: %w", name, op, ns, key, errs[i])
		}
		if won[i] {
			v := name
			if op == "cas" {
				v += "-cas"
			}
			winners = append(winners, v)
		}
	}
	return winners, nil
}

// TestConditionalRace attacks "exactly one wins": each round, racers
// released together call SetIfAbsent on a new key, each with its own value,
// and then CompareAndSwap on it from the value that won, each to a value of
// its own. Exactly one call of each race must report success, SQLite must
// hold the winner's value, and every Store a racer lost through must serve
// that value at once (its refused write refreshed its cache; the Stores
// never look for foreign writes otherwise, SyncInterval -1). Three
// configurations: eight racers on one Store; eight on two Stores on one
// file; four on a Store here and four in a child process on the same file,
// which races when told to through a pipe and answers with its results.
func TestConditionalRace(t *testing.T) {
	opts := opstate.Options{SyncInterval: -1}
	t.Run("one-store", func(t *testing.T) {
		path := dbPath(t)
		s := mustOpen(t, path, opts)
		runCondRace(t, path, newRacers("g", 8, s), nil)
	})
	t.Run("two-stores", func(t *testing.T) {
		path := dbPath(t)
		a, b := mustOpen(t, path, opts), mustOpen(t, path, opts)
		runCondRace(t, path, newRacers("g", 8, a, b), nil)
	})
	t.Run("two-processes", func(t *testing.T) {
		path := dbPath(t)
		s := mustOpen(t, path, opts)
		runCondRace(t, path, newRacers("p", 4, s), startCondRaceChild(t, path))
	})
}

// condRaceChild is the other side of TestConditionalRace's race across
// processes. It opens the Store at $OPSTATE_CONDRACE_DB and, for each line
// "sia KEY" or "cas KEY OLD" on its standard input, releases its four
// racers, then answers on standard output with one line: how many of them
// won, the values they won with (or "-"), and what its Store's Get of the
// key returns then ("-" for ""). It exits at the end of its input.
func condRaceChild() int {
	s, err := opstate.Open(os.Getenv(condRaceDBEnv), opstate.Options{SyncInterval: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	r := newRacers("c", 4, s)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) < 2 {
			fmt.Fprintf(os.Stderr, "bad request %q\n", in.Text())
			return 2
		}
		old := ""
		if len(f) > 2 {
			old = f[2]
		}
		winners, err := r.race(f[0], "race", f[1], old)
		var v string
		if err == nil {
			v, err = s.Get("race", f[1])
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("%d %s %s\n", len(winners), orDash(strings.Join(winners, ",")), orDash(v))
	}
	return 0
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// condRaceChildProc is a running condrace child: race sends it a request and
// returns its answer.
type condRaceChildProc struct {
	*pipedChild
}

// startCondRaceChild starts a condrace child on path, ended (its input
// closed and waited for) when the test ends.
func startCondRaceChild(t *testing.T, path string) *condRaceChildProc {
	t.Helper()
	return &condRaceChildProc{startPipedChild(t, "condrace", condRaceDBEnv+"="+path)}
}

// send asks the child to race.
func (c *condRaceChildProc) send(t *testing.T, req string) {
	t.Helper()
	if _, err := io.WriteString(c.in, req+"\n"); err != nil {
		t.Fatalf("condrace child: %v\n%s", err, c.stderr)
	}
}

// answer returns the child's answer to the last request: its winners and
// its Store's Get of the key.
func (c *condRaceChildProc) answer(t *testing.T) (winners []string, get string) {
	t.Helper()
	if !c.out.Scan() {
		t.Fatalf("condrace child ended: %v\n%s", c.out.Err(), c.stderr)
	}
	var n int
	var won string
	if _, err := fmt.Sscanf(c.out.Text(), "%d %s %s", &n, &won, &get); err != nil {
		t.Fatalf("condrace child said %q: %v", c.out.Text(), err)
	}
	if won != "-" {
		winners = strings.Split(won, ",")
	}
	if len(winners) != n {
		t.Fatalf("condrace child said %q: %d winners named, want %d", c.out.Text(), len(winners), n)
	}
	if get == "-" {
		get = ""
	}
	return winners, get
}

// runCondRace runs condRaceRounds rounds of both races with r, and with
// child, if not nil, racing at the same time in another process.
func runCondRace(t *testing.T, path string, r racers, child *condRaceChildProc) {
	// SQLite's view, through a Store that caches nothing.
	file := mustOpen(t, path, opstate.Options{CacheBytes: -1, SyncInterval: -1})
	const ns = "race"
	// wins counts the races won through each Store, the child's last.
	wins := make([]int, len(r.stores)+1)
	defer func() {
		t.Logf("races won through each Store (the child's last, if any): %v", wins)
		if child == nil {
			wins = wins[:len(r.stores)]
		}
		if slices.Contains(wins, 0) && !t.Failed() {
			t.Errorf("races won through each Store (the child's last, if any): %v; want some through each, or the race across them was not run", wins)
		}
	}()
	for round := range condRaceRounds {
		key := fmt.Sprint("k", round)
		old := ""
		for _, op := range []string{"sia", "cas"} {
			req := op + " " + key
			if op == "cas" {
				req += " " + old
			}
			if child != nil {
				child.send(t, req)
			}
			winners, err := r.race(op, ns, key, old)
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			var childGet string
			if child != nil {
				var w []string
				w, childGet = child.answer(t)
				winners = append(winners, w...)
			}
			if len(winners) != 1 {
				t.Fatalf("round %d: %s won by %q; want exactly one winner", round, op, winners)
			}
			old = winners[0]
			if i := slices.Index(r.names, strings.TrimSuffix(old, "-cas")); i >= 0 {
				wins[i%len(r.stores)]++
			} else {
				wins[len(r.stores)]++
			}
			wantGet(t, file, ns, key, old, true)
			for i, s := range r.stores {
				if v, err := s.Get(ns, key); v != old || err != nil {
					t.Fatalf("round %d, after %s: Store %d serves %q, %v; want the winner's %q", round, op, i, v, err, old)
				}
			}
			if child != nil && childGet != old {
				t.Fatalf("round %d, after %s: the child's Store serves %q; want the winner's %q", round, op, childGet, old)
			}
		}
	}
}
