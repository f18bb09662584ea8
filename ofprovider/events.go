package ofprovider

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/d8da9184/opstate"
	"github.com/open-feature/go-sdk/openfeature"
)

// Init starts following the namespace's changes ([opstate.Store.Watch])
// in one goroutine, which turns them into the provider's events until
// [Provider.Shutdown]. The SDK calls it when the provider is set, and
// marks the provider READY when it returns nil.
//
// Init while the provider already follows its namespace does nothing and
// returns nil (the SDK initializes a provider once for every domain it is
// set for). Init after Shutdown starts following again. Init fails, and
// starts nothing, when the Store is closed (an error matching
// [opstate.ErrClosed]), when the namespace is empty
// ([opstate.ErrEmptyName]) and when the Store is nil ([ErrNoStore]).
func (p *Provider) Init(openfeature.EvaluationContext) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop != nil {
		select {
		case <-p.done:
			// Ended by itself: the Store was closed. Watch again, which
			// then says so.
			p.stop()
			p.stop, p.done = nil, nil
		default:
			return nil
		}
	}
	if p.store == nil {
		return ErrNoStore
	}
	ctx, stop := context.WithCancel(context.Background())
	ch, err := p.store.Watch(ctx, p.ns)
	if err != nil {
		stop()
		return fmt.Errorf("ofprovider: watch namespace %q: %w", p.ns, err)
	}
	p.stop, p.done = stop, make(chan struct{})
	go p.follow(ctx, ch, p.done)
	return nil
}

// Shutdown stops following the namespace and returns once the goroutine
// Init started, and the Store's watch it read, have ended. Evaluations
// still work afterwards. A Shutdown without a running Init does nothing.
func (p *Provider) Shutdown() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop == nil {
		return
	}
	p.stop()
	<-p.done
	p.stop, p.done = nil, nil
}

// EventChannel returns the channel of the provider's events, which the
// SDK reads: PROVIDER_CONFIGURATION_CHANGED, PROVIDER_STALE,
// PROVIDER_READY and PROVIDER_ERROR, as the package documentation
// describes. It is the same channel for the provider's life, never
// closed.
func (p *Provider) EventChannel() <-chan openfeature.Event { return p.events }

// follow turns the Store's events of the namespace, from ch, into the
// provider's, until ctx ends (Shutdown) or the Store is closed; then it
// waits for ch to close and closes done.
func (p *Provider) follow(ctx context.Context, ch <-chan opstate.Event, done chan<- struct{}) {
	defer close(done)
	f := follower{p: p, ctx: ctx, known: make(map[string]struct{}), pending: make(map[string]struct{})}
	// Listed after Watch began, so that a key set meanwhile is either
	// listed or sent.
	if m, err := p.store.List(p.ns); err == nil {
		for k := range m {
			f.known[k] = struct{}{}
		}
	}
	if p.store.Stale() {
		// The outage began before Watch, which sends no OpStale for it;
		// the OpReset that ends it will come.
		f.stale = true
		if !f.emit(openfeature.ProviderStale, "opstate: change stream down (at Init)", nil) {
			f.drain(ch)
			return
		}
	}
	for {
		ev, ok := <-ch
		// Take every event already waiting, so that a burst of changes
		// is one PROVIDER_CONFIGURATION_CHANGED (of at most maxBatch
		// keys, so that a flood that never pauses is still reported).
		for ok {
			if !f.apply(ev) {
				f.drain(ch)
				return
			}
			if len(f.order) >= maxBatch {
				break
			}
			select {
			case ev, ok = <-ch:
				continue
			default:
			}
			break
		}
		if !f.flush() {
			f.drain(ch)
			return
		}
		if !ok {
			if ctx.Err() == nil {
				// The Store was closed under the provider: it cannot
				// come back.
				f.closed()
			}
			return
		}
	}
}

// maxBatch bounds the keys of one PROVIDER_CONFIGURATION_CHANGED.
const maxBatch = 1024

// follower is the state of one run of Provider.follow, owned by its
// goroutine.
type follower struct {
	p   *Provider
	ctx context.Context
	// known holds the keys the namespace is believed to hold: listed at
	// the start and at each OpReset, added by OpSet, removed by OpDelete
	// and OpExpire. An OpReset's FlagChanges are known's keys with the new
	// listing's, so that keys deleted meanwhile are named too.
	known map[string]struct{}
	// pending holds the keys changed since the last
	// PROVIDER_CONFIGURATION_CHANGED, in order.
	pending map[string]struct{}
	order   []string
	// stale says PROVIDER_STALE was sent and no PROVIDER_READY since.
	stale bool
}

// apply handles one event of the Store's, and reports false once the
// provider is shut down.
func (f *follower) apply(ev opstate.Event) bool {
	switch ev.Op {
	case opstate.OpSet, opstate.OpDelete, opstate.OpExpire:
		if ev.Op == opstate.OpSet {
			f.known[ev.Key] = struct{}{}
		} else {
			delete(f.known, ev.Key)
		}
		if _, ok := f.pending[ev.Key]; !ok {
			f.pending[ev.Key] = struct{}{}
			f.order = append(f.order, ev.Key)
		}
		return true
	case opstate.OpStale:
		if !f.flush() {
			return false
		}
		if f.stale {
			return true
		}
		f.stale = true
		return f.emit(openfeature.ProviderStale, "opstate: change stream down; others' changes are not seen until it is back", nil)
	case opstate.OpReset:
		return f.reset()
	}
	return true
}

// reset handles an OpReset: anything in the namespace may have changed,
// and, after an OpStale, the change stream is back: PROVIDER_READY. Then
// every flag known before or listed now is PROVIDER_CONFIGURATION_CHANGED.
//
// Store.Stale is no guide here: the Store sends the OpReset just before
// Stale turns false. (The OpReset of events dropped for a slow consumer
// during an outage is followed by another OpStale, so the provider is
// READY for a moment in that case.)
func (f *follower) reset() bool {
	if f.stale {
		f.stale = false
		if !f.emit(openfeature.ProviderReady, "opstate: change stream back", nil) {
			return false
		}
	}
	changed := f.known
	for _, k := range f.order {
		changed[k] = struct{}{}
	}
	clear(f.pending)
	f.order = f.order[:0]
	msg := fmt.Sprintf("namespace %q reset: every flag may have changed", f.p.ns)
	m, err := f.p.store.List(f.p.ns)
	if err == nil {
		f.known = make(map[string]struct{}, len(m))
		for k := range m {
			f.known[k] = struct{}{}
			changed[k] = struct{}{}
		}
	} else {
		f.known = maps.Clone(changed)
		msg += fmt.Sprintf(" (listing it failed: %v)", err)
	}
	return f.emit(openfeature.ProviderConfigChange, msg, slices.Sorted(maps.Keys(changed)))
}

// flush sends the pending changes as one PROVIDER_CONFIGURATION_CHANGED,
// if any; false once the provider is shut down.
func (f *follower) flush() bool {
	if len(f.order) == 0 {
		return true
	}
	keys := f.order
	f.order = nil
	clear(f.pending)
	return f.emit(openfeature.ProviderConfigChange, fmt.Sprintf("flags of namespace %q changed", f.p.ns), keys)
}

// closed sends the PROVIDER_ERROR of a Store closed under the provider.
func (f *follower) closed() {
	f.flush()
	f.emit(openfeature.ProviderError, opstate.ErrClosed.Error()+": evaluations return their defaults with GENERAL", nil)
}

// emit sends one event on the provider's channel, waiting for the SDK to
// take it; false if the provider is shut down first.
func (f *follower) emit(t openfeature.EventType, msg string, flags []string) bool {
	ev := openfeature.Event{
		ProviderName: Name,
		EventType:    t,
		ProviderEventDetails: openfeature.ProviderEventDetails{
			Message:     msg,
			FlagChanges: flags,
		},
	}
	if t == openfeature.ProviderError {
		ev.ErrorCode = openfeature.GeneralCode
	}
	select {
	case f.p.events <- ev:
		return true
	case <-f.ctx.Done():
		return false
	}
}

// drain waits for the Store to close ch, which it does once the watch's
// context has ended, so that nothing of the watch outlives Shutdown.
func (f *follower) drain(ch <-chan opstate.Event) {
	for range ch {
	}
}
