package pgtest_test

import (
	"slices"
	"testing"
	"time"

	"github.com/open-feature/go-sdk/openfeature"
)

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

// none fails the test if r collects an event within d.
func (r *recorder) none(t *testing.T, what string, d time.Duration) {
	t.Helper()
	select {
	case ev := <-r.ch:
		t.Errorf("%s: got %+v; want none", what, ev)
	case <-time.After(d):
	}
}

// naming accepts an event whose FlagChanges include flag.
func naming(flag string) func(openfeature.EventDetails) bool {
	return func(d openfeature.EventDetails) bool { return slices.Contains(d.FlagChanges, flag) }
}

// byProvider accepts the events the provider sent itself, leaving out
// those the SDK makes up for a handler added in a state (its Message
// says "provider is in ... state") or for Init ("Provider initialization
// successful").
func byProvider(d openfeature.EventDetails) bool {
	return len(d.Message) >= 8 && d.Message[:8] == "opstate:"
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
