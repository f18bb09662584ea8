package serve_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/internal/serve"
)

// streamGet opens GET path on f as an event stream, its answer's body to
// be read as it comes; the test's end closes it.
func streamGet(t *testing.T, f *fixture, path string, header map[string]string) (*http.Response, error) {
	return streamGetContext(t, context.Background(), f, path, header)
}

// streamGetContext is streamGet whose stream is closed when ctx ends, or
// at the test's end.
func streamGetContext(t *testing.T, ctx context.Context, f *fixture, path string, header map[string]string) (*http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	r, err := http.NewRequestWithContext(ctx, "GET", f.url+path, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, nil
}

// sse is one Server-Sent Event, or a comment.
type sse struct {
	event, data string
	comment     string // for a comment line, alone
}

// sseClient reads events from an event stream, each within wait.
type sseClient struct {
	events chan sse
	errc   chan error // the read's end: io.EOF or another error
}

// openEvents opens the event stream at path and returns its client once
// the stream's opening comment has come: from then on, its Watch
// reports every change.
func openEvents(t *testing.T, f *fixture, path string, header map[string]string) *sseClient {
	t.Helper()
	return openEventsContext(t, context.Background(), f, path, header)
}

// openEventsContext is openEvents whose stream is closed when ctx ends,
// or at the test's end.
func openEventsContext(t *testing.T, ctx context.Context, f *fixture, path string, header map[string]string) *sseClient {
	t.Helper()
	resp, err := streamGetContext(t, ctx, f, path, header)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s = %d %s %q; want 200 text/event-stream", path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	c := &sseClient{events: make(chan sse, 1000), errc: make(chan error, 1)}
	go func() {
		br := bufio.NewReader(resp.Body)
		var ev sse
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				c.errc <- err
				close(c.events)
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				if ev != (sse{}) {
					c.events <- ev
				}
				ev = sse{}
			case strings.HasPrefix(line, ":"):
				c.events <- sse{comment: line}
			default:
				name, value, _ := strings.Cut(line, ": ")
				switch name {
				case "event":
					ev.event = value
				case "data":
					ev.data = value
				default:
					c.errc <- fmt.Errorf("unexpected line %q", line)
					close(c.events)
					return
				}
			}
		}
	}()
	if got := c.next(t); got.comment != ": opstate event stream" {
		t.Fatalf("first line of %s = %+v; want the opening comment", path, got)
	}
	return c
}

// next returns the next event or comment.
func (c *sseClient) next(t *testing.T) sse {
	t.Helper()
	select {
	case ev, ok := <-c.events:
		if !ok {
			t.Fatalf("the stream ended: %v", <-c.errc)
		}
		return ev
	case <-time.After(wait):
		t.Fatalf("no event within %v", wait)
	}
	return sse{}
}

// nextEvent returns the next event, skipping heartbeats.
func (c *sseClient) nextEvent(t *testing.T) sse {
	t.Helper()
	for {
		if ev := c.next(t); ev.comment != ": heartbeat" {
			return ev
		}
	}
}

// end checks that the stream's next event is the end event with reason,
// and that the stream then ends.
func (c *sseClient) end(t *testing.T, reason string) {
	t.Helper()
	if ev := c.nextEvent(t); ev.event != "end" || ev.data != `{"reason":"`+reason+`"}` {
		t.Errorf("event %+v; want the end event, reason %q", ev, reason)
	}
	select {
	case ev, ok := <-c.events:
		if ok {
			t.Errorf("event %+v after the end event", ev)
		}
	case <-time.After(wait):
		t.Errorf("the stream did not end within %v of its end event", wait)
	}
}

// TestEvents checks the key-value event stream: one event a change, its
// data the change as JSON (strings that are not valid UTF-8 in base64),
// nothing for another namespace.
func TestEvents(t *testing.T) {
	clock := time.Now()
	s, err := opstate.Open(t.TempDir()+"/e.db", opstate.Options{SweepInterval: -1, Clock: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f := serveStore(t, s, serve.Options{})
	c := openEvents(t, f, "/v1/namespaces/a%2Fb/events", nil)
	ns := "a/b"
	type m = map[string]any
	for _, tt := range []struct {
		do   func() error
		want []m // the events it makes, in order
	}{
		{func() error { return s.Set("other", "k", "v") }, nil},
		{func() error { return s.Set(ns, "k", "v <1>\n") }, []m{{"op": "set", "namespace": ns, "key": "k", "value": "v <1>\n"}}},
		{func() error { return s.Set(ns, "empty", "") }, []m{{"op": "set", "namespace": ns, "key": "empty", "value": ""}}},
		{func() error { return s.Set(ns, "bin\xff", "\x00\xfe") }, []m{{"op": "set", "namespace": ns, "key_base64": "Ymlu/w==", "value_base64": "AP4="}}},
		{func() error { return s.Delete(ns, "k") }, []m{{"op": "delete", "namespace": ns, "key": "k"}}},
		// The expiry comes once the set was read: the Watch coalesces the
		// events of a key that wait for the stream, and would send the
		// expiry alone.
		{func() error { return s.SetWithTTL(ns, "ttl", "x", time.Second) }, []m{{"op": "set", "namespace": ns, "key": "ttl", "value": "x"}}},
		{func() error {
			clock = clock.Add(time.Hour)
			_, err := s.DeleteExpired(context.Background())
			return err
		}, []m{{"op": "expire", "namespace": ns, "key": "ttl"}}},
		{func() error { return s.DeleteNamespace(ns) }, []m{{"op": "reset", "namespace": ns}}},
	} {
		if err := tt.do(); err != nil {
			t.Fatal(err)
		}
		for _, want := range tt.want {
			checkEvent(t, c.nextEvent(t), want)
		}
	}
}

// checkEvent fails the test unless ev is a data-only event whose JSON is
// want.
func checkEvent(t *testing.T, ev sse, want map[string]any) {
	t.Helper()
	var got map[string]any
	if ev.event != "" || json.Unmarshal([]byte(ev.data), &got) != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("event %+v; want data %v", ev, want)
	}
}

// TestEventsHeartbeat checks that a stream with nothing to send sends a
// heartbeat comment every Heartbeat, and that an event puts it off.
func TestEventsHeartbeat(t *testing.T) {
	f := start(t, serve.Options{Heartbeat: 50 * time.Millisecond})
	c := openEvents(t, f, "/v1/namespaces/ns/events", nil)
	for range 3 {
		if got := c.next(t); got.comment != ": heartbeat" {
			t.Fatalf("got %+v; want a heartbeat", got)
		}
	}
}

// TestEventsEndStoreClosed checks that a stream whose Store closes says
// so in an end event and ends.
func TestEventsEndStoreClosed(t *testing.T) {
	f := start(t, serve.Options{})
	c := openEvents(t, f, "/v1/namespaces/ns/events", nil)
	o := openEvents(t, f, "/ofrep/v1/events", nil)
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	c.end(t, "store closed")
	o.end(t, "store closed")
	// What comes after is refused as the Store's errors are: 503.
	f.want(t, 503, request{method: "GET", path: keyPath("ns", "k")})
	f.want(t, 503, request{method: "GET", path: "/v1/namespaces/ns/events"})
}

// TestShutdown checks that Serve, its context ended, ends the event
// streams with their end event, lets a request in flight finish, refuses
// new connections, and returns nil within ShutdownTimeout.
func TestShutdown(t *testing.T) {
	f := start(t, serve.Options{ShutdownTimeout: 5 * time.Second})
	c := openEvents(t, f, "/v1/namespaces/ns/events", nil)
	// A PUT whose body is still coming when the shutdown begins.
	conn, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: 8\r\n\r\nhalf", keyPath("ns", "inflight"))
	time.Sleep(100 * time.Millisecond) // the server reads the headers and waits for the body
	f.stop()
	c.end(t, "server shutting down")
	time.Sleep(100 * time.Millisecond)
	io.WriteString(conn, "done")
	conn.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("the PUT in flight at shutdown: %v, %v; want 204", resp, err)
	}
	if v, _ := f.store.Get("ns", "inflight"); v != "halfdone" {
		t.Errorf("the PUT in flight stored %q; want halfdone", v)
	}
	select {
	case err := <-f.done:
		if err != nil {
			t.Errorf("Serve = %v; want nil", err)
		}
		f.done <- err // for the cleanup
	case <-time.After(wait):
		t.Fatal("Serve did not return")
	}
	if c, err := net.Dial("tcp", f.addr); err == nil {
		c.Close()
		t.Error("a connection was accepted after the shutdown")
	}
}

// TestStreamCap checks that past MaxStreams an event stream is refused
// with 503, and that a closed one frees its slot.
func TestStreamCap(t *testing.T) {
	f := start(t, serve.Options{MaxStreams: 3})
	var cancels []context.CancelFunc
	for range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		r, _ := http.NewRequestWithContext(ctx, "GET", f.url+"/v1/namespaces/ns/events", nil)
		resp, err := http.DefaultClient.Do(r)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream: %v %v", resp, err)
		}
		defer resp.Body.Close()
	}
	_, body := f.want(t, 503, request{method: "GET", path: "/ofrep/v1/events"})
	if !strings.Contains(body, "too many event streams") {
		t.Errorf("503 body %q", body)
	}
	// Other requests go on.
	f.want(t, 404, request{method: "GET", path: keyPath("ns", "k")})
	cancels[0]()
	deadline := time.Now().Add(wait)
	for f.srv.OpenStreams() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams open after one was closed; want 2", f.srv.OpenStreams())
		}
		time.Sleep(10 * time.Millisecond)
	}
	openEvents(t, f, "/v1/namespaces/ns/events", nil)
}

// TestOFREPEvents checks the OFREP event stream: refetchEvaluation, in
// OFREP's envelope, at each change to the flags namespace, whoever makes
// it, and nothing for another namespace.
func TestOFREPEvents(t *testing.T) {
	f := start(t, serve.Options{})
	c := openEvents(t, f, "/ofrep/v1/events", nil)
	for _, do := range []func() error{
		func() error { return f.store.Set("flags", "a", "true") },
		func() error { return f.store.Delete("flags", "a") },
		func() error { return f.store.DeleteNamespace("flags") },
	} {
		if err := f.store.Set("other", "x", "1"); err != nil {
			t.Fatal(err)
		}
		if err := do(); err != nil {
			t.Fatal(err)
		}
		if ev := c.nextEvent(t); ev.event != "message" || ev.data != `{"type":"refetchEvaluation"}` {
			t.Errorf("event %+v; want message refetchEvaluation", ev)
		}
	}
	f.want(t, 204, request{method: "PUT", path: keyPath("flags", "b"), body: "1"})
	if ev := c.nextEvent(t); ev.data != `{"type":"refetchEvaluation"}` {
		t.Errorf("after a PUT: %+v; want refetchEvaluation", ev)
	}
}

// TestSlowReader checks that an event stream whose client reads nothing
// is cut off once a write has waited WriteTimeout, and never slows the
// writers: every Set returns, and the stream's slot is freed.
func TestSlowReader(t *testing.T) {
	f := start(t, serve.Options{WriteTimeout: 200 * time.Millisecond})
	conn, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /v1/namespaces/big/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
	deadline := time.Now().Add(wait)
	for f.srv.OpenStreams() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the stream did not open")
		}
		time.Sleep(10 * time.Millisecond)
	}
	value := strings.Repeat("v", 256<<10)
	for i := 0; f.srv.OpenStreams() != 0; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("a stream that reads nothing still open after %d writes of 256 KiB and %v", i, wait)
		}
		if err := f.store.Set("big", fmt.Sprint("k", i), value); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStreamOutlivesTimeouts checks that an event stream lives past
// ReadTimeout and WriteTimeout, which bound ordinary requests: it still
// reports a change made after both have passed.
func TestStreamOutlivesTimeouts(t *testing.T) {
	f := start(t, serve.Options{ReadHeaderTimeout: 100 * time.Millisecond, ReadTimeout: 100 * time.Millisecond,
		WriteTimeout: 100 * time.Millisecond, Heartbeat: time.Hour})
	c := openEvents(t, f, "/v1/namespaces/ns/events", nil)
	time.Sleep(500 * time.Millisecond)
	if err := f.store.Set("ns", "k", "late"); err != nil {
		t.Fatal(err)
	}
	checkEvent(t, c.nextEvent(t), map[string]any{"op": "set", "namespace": "ns", "key": "k", "value": "late"})
}
