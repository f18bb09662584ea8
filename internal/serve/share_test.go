package serve_test

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/d8da9184/opstate/internal/serve"
)

// watchers returns how many Store.Watch calls of this process are
// running: the goroutines delivering their events (once they have
// begun).
func watchers() int {
	buf := make([]byte, 16<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "opstate.(*watcher).deliver(")
}

// waitFor waits up to wait for cond, and fails the test with what it
// says if cond never holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", wait, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// isRefetch reports whether ev is OFREP's refetchEvaluation event.
func isRefetch(ev sse) bool {
	return ev.event == "message" && ev.data == `{"type":"refetchEvaluation"}`
}

// TestStreamsShareOneWatch checks that the event streams of a namespace,
// key-value and OFREP alike, share one Store.Watch: with 20 streams of the
// flags namespace open there is one, and one more for another namespace's
// streams; each stream still gets its events; a namespace's Watch ends
// with its last stream, and a stream opened after that starts one again.
func TestStreamsShareOneWatch(t *testing.T) {
	f := start(t, serve.Options{})
	if n := watchers(); n != 0 {
		t.Fatalf("%d watchers before any stream", n)
	}
	type client struct {
		c      *sseClient
		cancel context.CancelFunc
		ofrep  bool
	}
	var flags []client
	for i := range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		path, ofrep := "/v1/namespaces/flags/events", i%2 == 0
		if ofrep {
			path = "/ofrep/v1/events"
		}
		flags = append(flags, client{openEventsContext(t, ctx, f, path, nil), cancel, ofrep})
	}
	// A watcher's goroutine may not have begun yet: wait for the count.
	waitFor(t, "20 streams of one namespace hold one watcher", func() bool { return watchers() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	other := openEventsContext(t, ctx, f, "/v1/namespaces/other/events", nil)
	waitFor(t, "streams of two namespaces hold two watchers", func() bool { return watchers() == 2 })
	check := func(c client, what string) {
		t.Helper()
		ev := c.c.nextEvent(t)
		if c.ofrep && !isRefetch(ev) || !c.ofrep && !strings.Contains(ev.data, `"key":"a"`) {
			t.Errorf("%s: %+v; want the change of a", what, ev)
		}
	}
	if err := f.store.Set("flags", "a", "true"); err != nil {
		t.Fatal(err)
	}
	for i, c := range flags {
		check(c, "stream "+strconv.Itoa(i))
	}
	for _, c := range flags[1:] {
		c.cancel()
	}
	waitFor(t, "two streams left open", func() bool { return f.srv.OpenStreams() == 2 })
	if got := watchers(); got != 2 {
		t.Errorf("a stream of each namespace left: %d watchers; want 2", got)
	}
	if err := f.store.Set("flags", "a", "false"); err != nil {
		t.Fatal(err)
	}
	check(flags[0], "the stream left")
	if err := f.store.Set("other", "a", "1"); err != nil {
		t.Fatal(err)
	}
	check(client{c: other}, "the other namespace's stream")
	flags[0].cancel()
	cancel()
	waitFor(t, "no watcher once the last stream closed", func() bool { return f.srv.OpenStreams() == 0 && watchers() == 0 })
	c := openEvents(t, f, "/ofrep/v1/events", nil)
	if err := f.store.Set("flags", "a", "true"); err != nil {
		t.Fatal(err)
	}
	check(client{c: c, ofrep: true}, "a stream opened again")
}

// TestOFREPEventsConverge checks what an OFREP event stream promises its
// clients under a flood of changes: a refetchEvaluation after the last
// change. 30 streams each evaluate the flag again at every refetch while
// 300 writes change it; once the writes are done, every client must come
// to see the last value, which only a refetch sent after that write was
// served can tell it to read.
func TestOFREPEventsConverge(t *testing.T) {
	f := start(t, serve.Options{})
	const streams, writes = 30, 300
	if err := f.store.Set("flags", "f", "0"); err != nil {
		t.Fatal(err)
	}
	seen := make([]atomic.Int64, streams) // the value each client last evaluated
	var readers sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); readers.Wait() }()
	for i := range streams {
		c := openEventsContext(t, ctx, f, "/ofrep/v1/events", nil)
		readers.Add(1)
		go func() {
			defer readers.Done()
			for ev := range c.events {
				if !isRefetch(ev) {
					continue
				}
				v, err := f.store.Get("flags", "f")
				if err != nil {
					return
				}
				n, _ := strconv.ParseInt(v, 10, 64)
				seen[i].Store(n)
			}
		}()
	}
	for v := 1; v <= writes; v++ {
		if err := f.store.Set("flags", "f", strconv.Itoa(v)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every client sees the last write", func() bool {
		for i := range seen {
			if seen[i].Load() != writes {
				return false
			}
		}
		return true
	})
}
