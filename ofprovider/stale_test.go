package ofprovider_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/ofprovider"
	"github.com/d8da9184/opstate/storage"
	"github.com/open-feature/go-sdk/openfeature"
)

// flakyBackend is a storage.Backend held in a map, and a
// storage.Notifier whose change stream the test breaks and mends: what a
// Store on PostgreSQL sees when its LISTEN connection fails, without a
// server, at the moments the test chooses.
type flakyBackend struct {
	mu   sync.Mutex // guards rows and down
	rows map[storage.Key]storage.Row
	// down makes Listen fail, as connecting does while the server is
	// unreachable.
	down bool
	// breaks ends the listener's Next with an error: a send is taken by
	// the Next that is waiting.
	breaks chan struct{}
}

func newFlakyBackend() *flakyBackend {
	return &flakyBackend{rows: map[storage.Key]storage.Row{}, breaks: make(chan struct{})}
}

var errBroken = errors.New("connection lost (test)")

// breakStream fails the listener, and Listen until mend.
func (b *flakyBackend) breakStream() {
	b.mu.Lock()
	b.down = true
	b.mu.Unlock()
	b.breaks <- struct{}{}
}

// mend lets the Store listen again.
func (b *flakyBackend) mend() {
	b.mu.Lock()
	b.down = false
	b.mu.Unlock()
}

func (b *flakyBackend) Get(_ context.Context, ns, key string) (storage.Row, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.rows[storage.Key{Namespace: ns, Key: key}]
	return r, ok, nil
}

func (b *flakyBackend) List(_ context.Context, ns string, now int64) (map[string]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := map[string]string{}
	for k, r := range b.rows {
		if k.Namespace == ns && (r.ExpiresAt == 0 || now < r.ExpiresAt) {
			m[k.Key] = r.Value
		}
	}
	return m, nil
}

func (b *flakyBackend) Namespaces(context.Context, int64) ([]storage.NamespaceCount, error) {
	return nil, errors.New("Namespaces: not in this test backend")
}

// Apply does the unconditional writes, which are all these tests make.
func (b *flakyBackend) Apply(_ context.Context, _ int64, ws []storage.Write) ([]storage.Result, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	res := make([]storage.Result, len(ws))
	for i, w := range ws {
		k := storage.Key{Namespace: w.Namespace, Key: w.Key}
		switch w.Kind {
		case storage.Put:
			b.rows[k] = storage.Row{Value: w.Value, ExpiresAt: w.ExpiresAt}
		case storage.Delete:
			delete(b.rows, k)
		default:
			return nil, errors.New("Apply: only Put and Delete in this test backend")
		}
		res[i].Changed = true
	}
	return res, nil
}

func (b *flakyBackend) DeleteExpired(context.Context, int64, int) ([]storage.Key, error) {
	return nil, nil
}

func (b *flakyBackend) Close() error { return nil }

func (b *flakyBackend) Listen(context.Context) (storage.Listener, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return nil, errBroken
	}
	return flakyListener{b}, nil
}

type flakyListener struct{ b *flakyBackend }

func (l flakyListener) Next(ctx context.Context) (storage.Changes, error) {
	select {
	case <-l.b.breaks:
		return storage.Changes{}, errBroken
	case <-ctx.Done():
		return storage.Changes{}, ctx.Err()
	}
}

func (l flakyListener) Close() error { return nil }

// openFlaky opens a Store over a new flakyBackend, closed at cleanup.
func openFlaky(t *testing.T) (*opstate.Store, *flakyBackend) {
	t.Helper()
	b := newFlakyBackend()
	s, err := opstate.OpenBackend(b, opstate.Options{SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, b
}

// byProvider accepts the events the provider sent itself, leaving out
// those the SDK makes up for a handler added in a state (its Message
// says "provider is in ... state") or for Init ("Provider initialization
// successful").
func byProvider(d openfeature.EventDetails) bool {
	return len(d.Message) >= 8 && d.Message[:8] == "opstate:"
}

// TestStaleThenReady breaks the Store's change stream twice: each time
// the provider sends PROVIDER_STALE and the SDK reports STALE while the
// Store is stale, evaluations go on (read past the cache), and once the
// stream is back the provider sends PROVIDER_READY and a configuration
// change naming every flag, and the SDK reports READY.
func TestStaleThenReady(t *testing.T) {
	s, b := openFlaky(t)
	mustSet(t, s, "t", "true")
	mustSet(t, s, "u", "false")
	c := setProvider(t, ofprovider.New(s, ns))
	e := recordStates(t, c)
	stale, ready, changed := e.stale, e.ready, e.changed

	for round := range 2 {
		b.breakStream()
		ev := stale.wait(t, "PROVIDER_STALE", nil)
		if ev.ProviderName != ofprovider.Name {
			t.Errorf("round %d: PROVIDER_STALE's ProviderName = %q; want %q", round, ev.ProviderName, ofprovider.Name)
		}
		if !s.Stale() {
			t.Fatalf("round %d: Store.Stale() = false after the stream broke", round)
		}
		if got := c.State(); got != openfeature.StaleState {
			t.Errorf("round %d: State() = %s while the stream is down; want STALE", round, got)
		}
		wantBool(t, c, "t", true)
		ready.none(t, "while the stream is down", 50*time.Millisecond)

		b.mend()
		ready.wait(t, "PROVIDER_READY once the stream is back", byProvider)
		if got := c.State(); got != openfeature.ReadyState {
			t.Errorf("round %d: State() = %s after PROVIDER_READY; want READY", round, got)
		}
		ev = changed.wait(t, "configuration change once the stream is back", func(d openfeature.EventDetails) bool { return len(d.FlagChanges) == 2 })
		if want := []string{"t", "u"}; !slices.Equal(ev.FlagChanges, want) {
			t.Errorf("round %d: FlagChanges after the outage = %q; want %q", round, ev.FlagChanges, want)
		}
		wantBool(t, c, "u", false)
	}
	stale.none(t, "after the stream came back", 50*time.Millisecond)
}

// TestStaleAtInit sets the provider while the Store is stale already,
// which no OpStale will tell the provider: it sends PROVIDER_STALE by
// itself, and PROVIDER_READY once the stream is back.
func TestStaleAtInit(t *testing.T) {
	s, b := openFlaky(t)
	mustSet(t, s, "t", "true")
	b.breakStream()
	for !s.Stale() {
		time.Sleep(time.Millisecond) // the Store notices the break in its own goroutine
	}
	api := newAPI(t)
	c := api.NewClient()
	stale := record(c, openfeature.ProviderStale)
	ready := record(c, openfeature.ProviderReady)
	if err := api.SetProviderAndWait(context.Background(), ofprovider.New(s, ns)); err != nil {
		t.Fatal(err)
	}
	stale.wait(t, "PROVIDER_STALE of a provider set while the Store is stale", byProvider)
	wantBool(t, c, "t", true)
	b.mend()
	ready.wait(t, "PROVIDER_READY once the stream is back", byProvider)
}
