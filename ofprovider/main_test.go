package ofprovider_test

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-feature/go-sdk/openfeature"
)

// TestMain fails the run if a goroutine of a Provider or of a Store is
// still alive once every test and example has shut its providers down
// and closed its Stores.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := goroutinesAfter(2*time.Second, "github.com/d8da9184/opstate"); len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "goroutines outlived their Provider or Store:\n%s\n", strings.Join(leaked, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// providerFrame is in the stack of the goroutine a Provider's Init starts.
const providerFrame = "github.com/d8da9184/opstate/ofprovider.(*Provider).follow"

// watchFrame is in the stack of the goroutine of a Store's Watch.
const watchFrame = "github.com/d8da9184/opstate.(*Store).Watch"

// goroutines returns the stacks of the goroutines, other than the
// caller's and those of tests, that run code whose name contains frame.
func goroutines(frame string) []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n")[1:] { // [0] is the caller's
		if strings.Contains(g, frame) && !strings.Contains(g, "ofprovider_test.Test") && !strings.Contains(g, "testing.tRunner") {
			found = append(found, g)
		}
	}
	return found
}

// goroutinesAfter waits up to timeout for the goroutines of frame to end
// and returns the stacks of those still running.
func goroutinesAfter(timeout time.Duration, frame string) []string {
	return countGoroutines(timeout, frame, 0)
}

// countGoroutines waits up to timeout for n goroutines of frame to run,
// and returns the stacks of those that do. (A goroutine just started may
// not be in a dump yet, and one that has done its last act may still be.)
func countGoroutines(timeout time.Duration, frame string, n int) []string {
	deadline := time.Now().Add(timeout)
	for {
		g := goroutines(frame)
		if len(g) == n || time.Now().After(deadline) {
			return g
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wantNoFollower fails the test if a Provider's goroutine, or a Store's
// Watch goroutine, still runs a moment after when: Shutdown returns once
// they have done their last act, and the dump may show them exiting.
func wantNoFollower(t *testing.T, when string) {
	t.Helper()
	for _, frame := range []string{providerFrame, watchFrame} {
		if g := goroutinesAfter(time.Second, frame); len(g) > 0 {
			t.Errorf("%s: %d goroutines of %s running; want none:\n%s", when, len(g), frame, strings.Join(g, "\n\n"))
		}
	}
}

// recorder collects the events of one type that reach a handler.
type recorder struct {
	ch chan openfeature.EventDetails
}

// record adds a handler of events of type et to c, and returns what it
// collects. (The SDK calls a READY or STALE handler at once when the
// provider is in that state already.)
func record(c *openfeature.Client, et openfeature.EventType) *recorder {
	r := &recorder{ch: make(chan openfeature.EventDetails, 1<<12)}
	f := func(d openfeature.EventDetails) {
		select {
		case r.ch <- d:
		default: // a test that collects this many has failed already
		}
	}
	c.AddHandler(et, &f)
	return r
}

// eventTimeout bounds the wait for an event. It is no target: events
// come within milliseconds; this is what a loaded machine may take.
const eventTimeout = 10 * time.Second

// wait returns the first event collected that ok accepts (nil: any),
// failing the test after eventTimeout.
func (r *recorder) wait(t *testing.T, what string, ok func(openfeature.EventDetails) bool) openfeature.EventDetails {
	t.Helper()
	timeout := time.After(eventTimeout)
	for {
		select {
		case d := <-r.ch:
			if ok == nil || ok(d) {
				return d
			}
		case <-timeout:
			t.Fatalf("no %s within %v", what, eventTimeout)
		}
	}
}

// naming accepts an event whose FlagChanges include flag.
func naming(flag string) func(openfeature.EventDetails) bool {
	return func(d openfeature.EventDetails) bool { return slices.Contains(d.FlagChanges, flag) }
}

// none fails the test if r collects an event within d.
func (r *recorder) none(t *testing.T, what string, d time.Duration) {
	t.Helper()
	select {
	case ev := <-r.ch:
		t.Errorf("%s: got %+v; want none", what, ev)
	case <-time.After(d):
	}
}

// stateEvents are the recorders of a client's state events and
// configuration changes.
type stateEvents struct{ stale, ready, changed *recorder }

// recordStates adds recorders of PROVIDER_STALE, PROVIDER_READY and
// PROVIDER_CONFIGURATION_CHANGED to c, a client of a READY provider, and
// takes the READY the SDK sends at once to a handler added then.
func recordStates(t *testing.T, c *openfeature.Client) stateEvents {
	t.Helper()
	e := stateEvents{record(c, openfeature.ProviderStale), record(c, openfeature.ProviderReady), record(c, openfeature.ProviderConfigChange)}
	e.ready.wait(t, "the READY of a handler added to a ready provider", nil)
	return e
}
