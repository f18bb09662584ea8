package opstate_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// TestMain fails the run if any goroutine of a Store, of its database/sql
// pool or of the SQLite driver is still alive once every test has closed
// its stores.
//
// Run with the environment variable childRoleEnv set, the binary plays that
// child role of a test instead (see children_test.go).
func TestMain(m *testing.M) {
	if code, ran := runChildRole(); ran {
		os.Exit(code)
	}
	code := m.Run()
	if code == 0 {
		if leaked := storeGoroutines(2*time.Second, false); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines outlived their Store:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// storeGoroutines waits up to timeout for the goroutines that belong to a
// Store to end, and returns the stacks of those still running. With
// ownOnly it looks only at goroutines running opstate's code, leaving out
// those of database/sql and the driver, which end on their own shortly
// after the pool is closed.
func storeGoroutines(timeout time.Duration, ownOnly bool) string {
	deadline := time.Now().Add(timeout)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n")[1:] { // [0] is this goroutine
			if strings.Contains(g, "opstate_test.Test") {
				continue // a test's own goroutine, calling into the Store
			}
			own := strings.Contains(g, "github.com/d8da9184/opstate.") ||
				strings.Contains(g, "github.com/d8da9184/opstate/")
			if own || !ownOnly && (strings.Contains(g, "database/sql.") || strings.Contains(g, "modernc.org/sqlite")) {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCloseStopsGoroutines runs a Store with a busy background sweeper and
// DeleteExpired callers that give up early, and checks that Close leaves no
// goroutine behind.
func TestCloseStopsGoroutines(t *testing.T) {
	if g := storeGoroutines(2*time.Second, false); g != "" {
		t.Skipf("goroutines of other tests still running:\n%s", g)
	}
	clk := newClock()
	s, err := opstate.Open(dbPath(t), opstate.Options{Clock: clk.Now, SweepInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		if err := s.SetWithTTL("ns", fmt.Sprint(i), "v", time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Microsecond)
	defer cancel()
	for range 10 {
		s.DeleteExpired(ctx) // returns at once; the shared sweep goes on
		s.Get("ns", "1")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if g := storeGoroutines(0, true); g != "" {
		t.Errorf("goroutines running opstate code after Close returned:\n%s", g)
	}
	if g := storeGoroutines(2*time.Second, false); g != "" {
		t.Errorf("database goroutines still running 2s after Close:\n%s", g)
	}
}

// TestConcurrentClose closes a busy Store from two goroutines at once:
// neither Close may return before the Store's goroutines have stopped.
func TestConcurrentClose(t *testing.T) {
	if g := storeGoroutines(2*time.Second, false); g != "" {
		t.Skipf("goroutines of other tests still running:\n%s", g)
	}
	s, err := opstate.Open(dbPath(t), opstate.Options{SweepInterval: time.Millisecond, SyncInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := s.Set("ns", fmt.Sprint(i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	leftovers := make([]string, 2)
	for i := range leftovers {
		wg.Go(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close = %v", err)
			}
			leftovers[i] = storeGoroutines(0, true)
		})
	}
	wg.Wait()
	for _, g := range leftovers {
		if g != "" {
			t.Errorf("goroutines running opstate code after a Close returned:\n%s", g)
		}
	}
}
