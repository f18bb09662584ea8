package serve_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate/internal/serve"
)

// closedWithin fails the test unless the server closes c within wait,
// and returns what it sent first.
func closedWithin(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(wait))
	b, err := io.ReadAll(c)
	if isTimeout(err) {
		t.Fatalf("the server did not close a slow client's connection within %v", wait)
	}
	return string(b)
}

// TestSlowClient checks that a client sending its headers, or its body,
// too slowly is disconnected after ReadHeaderTimeout or ReadTimeout,
// storing nothing, while others are served meanwhile.
func TestSlowClient(t *testing.T) {
	f := start(t, serve.Options{ReadHeaderTimeout: 200 * time.Millisecond, ReadTimeout: 400 * time.Millisecond})
	t.Run("headers", func(t *testing.T) {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /v1/namespaces HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
		start := time.Now()
		f.want(t, 200, request{method: "GET", path: "/v1/namespaces"})
		closedWithin(t, c)
		t.Logf("closed after %v", time.Since(start))
	})
	t.Run("body", func(t *testing.T) {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "PUT %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nonly ten b", keyPath("ns", "slow"))
		f.want(t, 204, request{method: "PUT", path: keyPath("ns", "fast"), body: "x"})
		got := closedWithin(t, c)
		if got != "" && !strings.HasPrefix(got, "HTTP/1.1 400 ") {
			t.Errorf("a slow body got %q; want 400 or nothing", got)
		}
		if _, ok, _ := f.store.Lookup("ns", "slow"); ok {
			t.Error("a body that never arrived stored a value")
		}
	})
}

// TestLargeInput checks the bounds on what a client sends: headers over
// MaxHeaderBytes (431), a body over MaxValueBytes with or without
// Content-Length (413), on PUT and on OFREP, storing nothing.
func TestLargeInput(t *testing.T) {
	f := start(t, serve.Options{})
	for _, h := range []string{"X-Big: ", "Authorization: Bearer "} {
		// Raw: the server answers before it has read the headers, and
		// net/http's client, still writing them, may see a reset first.
		got := rawRequest(t, f.addr, "GET /v1/namespaces HTTP/1.1\r\nHost: localhost\r\n"+h+strings.Repeat("h", 100<<10)+"\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.1 431 ") {
			t.Errorf("headers of 100 KiB (%s...) got %q; want 431", h, trim(got))
		}
	}
	big := strings.Repeat("b", serve.DefaultMaxValueBytes+1)
	f.want(t, 413, request{method: "PUT", path: keyPath("ns", "big"), body: big})
	f.want(t, 204, request{method: "PUT", path: keyPath("ns", "max"), body: big[1:]})
	// Chunked: no Content-Length to refuse up front.
	r, _ := http.NewRequest("PUT", f.url+keyPath("ns", "chunked"), io.MultiReader(strings.NewReader(big)))
	r.ContentLength = -1
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("chunked PUT over the limit = %d; want 413", resp.StatusCode)
	}
	f.want(t, 413, request{method: "POST", path: "/ofrep/v1/evaluate/flags", body: `{"context":{"x":"` + big + `"}}`})
	for _, k := range []string{"big", "chunked"} {
		if _, ok, _ := f.store.Lookup("ns", k); ok {
			t.Errorf("a body over the limit was stored under %s", k)
		}
	}
}

// TestConnCap checks that thousands of idle connections are held up to
// MaxConns and the excess answered 503 and closed, that the server goes
// on serving the connections it holds, and that a closed one frees its
// slot.
func TestConnCap(t *testing.T) {
	const capacity, excess = 1000, 1000
	f := start(t, serve.Options{MaxConns: capacity, MaxStreams: 10})
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range capacity - 1 {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	// The last slot: a keep-alive connection that has made a request.
	last, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	held = append(held, last)
	lastR := bufio.NewReader(last)
	ask := func() int {
		fmt.Fprintf(last, "GET /v1/namespaces HTTP/1.1\r\nHost: localhost\r\n\r\n")
		last.SetReadDeadline(time.Now().Add(wait))
		resp, err := http.ReadResponse(lastR, nil)
		if err != nil {
			t.Fatalf("a held connection: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := ask(); code != 200 {
		t.Fatalf("held connection = %d; want 200", code)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	answers := map[string]int{}
	for range excess {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", f.addr)
			if err != nil {
				mu.Lock()
				answers["dial: "+err.Error()]++
				mu.Unlock()
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "GET /v1/namespaces HTTP/1.1\r\nHost: localhost\r\n\r\n")
			c.SetReadDeadline(time.Now().Add(wait))
			b, _ := io.ReadAll(c)
			status, _, _ := strings.Cut(string(b), "\r\n")
			mu.Lock()
			answers[status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Logf("answers to %d connections over the cap: %v", excess, answers)
	for status := range answers {
		if status != "HTTP/1.1 503 Service Unavailable" && status != "" {
			t.Errorf("a connection over the cap got %q; want 503 or a close", status)
		}
	}
	if answers["HTTP/1.1 503 Service Unavailable"] == 0 {
		t.Error("no connection over the cap was answered 503")
	}
	if code := ask(); code != 200 {
		t.Errorf("held connection after the excess = %d; want 200", code)
	}
	held[0].Close()
	deadline := time.Now().Add(wait)
	for {
		resp, err := http.Get(f.url + "/v1/namespaces")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection served within %v of one closed: %v %v", wait, resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestManyStreams checks a thousand idle event streams on one namespace:
// each holds, the next is refused 503 at MaxStreams, and a change
// reaches a stream opened last.
func TestManyStreams(t *testing.T) {
	const n = 1000
	f := start(t, serve.Options{MaxStreams: n})
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET /v1/namespaces/ns/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(wait))
		if i == n-1 { // the last one is read below
			break
		}
	}
	for i, c := range conns[:n-1] {
		br := bufio.NewReaderSize(c, 512)
		status, err := br.ReadString('\n')
		if err != nil || status != "HTTP/1.1 200 OK\r\n" {
			t.Fatalf("stream %d: %q, %v; want 200", i, status, err)
		}
	}
	deadline := time.Now().Add(wait)
	for f.srv.OpenStreams() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams open; want %d", f.srv.OpenStreams(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, body := f.want(t, 503, request{method: "GET", path: "/v1/namespaces/ns/events"})
	if !strings.Contains(body, "too many event streams") {
		t.Errorf("stream %d: %q", n+1, body)
	}
	// The last stream sees a change.
	last := bufio.NewReader(conns[n-1])
	if err := f.store.Set("ns", "k", "v"); err != nil {
		t.Fatal(err)
	}
	for {
		line, err := last.ReadString('\n')
		if err != nil {
			t.Fatalf("the last stream: %v", err)
		}
		if strings.Contains(line, `"op":"set"`) {
			break
		}
	}
}
