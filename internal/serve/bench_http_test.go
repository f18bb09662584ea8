package serve_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/d8da9184/opstate/internal/serve"
)

// benchClients is the number of concurrent clients of the request
// benchmarks, each on a keep-alive connection of its own.
const benchClients = 32

// BenchmarkRequests measures the server's answers over loopback HTTP/1.1
// keep-alive, benchClients clients at once, against a bare net/http
// handler that writes the same bytes (the same status, headers and body,
// captured from the server's own answer) to the same client, in the same
// run: the two alternate in rounds of at most 1,000 requests each, so
// that the machine's neighbours disturb both alike.
//
//   - ns/op and bare-ns/op: wall time per request (1 / throughput);
//     vs-bare: opstate's throughput ÷ the bare handler's.
//   - p50-µs, p99-µs (and bare-p99-µs): a request's latency at the client,
//     the queueing of benchClients clients on the machine's processors
//     included.
//   - handler-allocs/req (and bare-handler-allocs/req): allocations of the
//     handler alone, ServeHTTP called directly with a reused request and a
//     response writer that allocates nothing (testing.AllocsPerRun).
//   - proc-allocs/req (and bare-proc-allocs/req): allocations of the whole
//     process per request over the timed rounds, from runtime.MemStats:
//     the client's, net/http's connection handling and the handler's
//     together. The difference of the two is what the server adds.
//
// The endpoints: one OFREP flag evaluation, a key's GET, the bulk
// evaluation of 100 flags, and its 304 (If-None-Match with the current
// ETag).
func BenchmarkRequests(b *testing.B) {
	ctx := `{"context":{"targetingKey":"user-1"}}`
	jsonType := map[string]string{"Content-Type": "application/json"}
	for _, e := range []struct {
		name string
		req  benchRequest
	}{
		{"ofrep-flag", benchRequest{method: "POST", path: "/ofrep/v1/evaluate/flags/flag-007", body: ctx, header: jsonType, status: 200}},
		{"kv-get", benchRequest{method: "GET", path: "/v1/namespaces/ns/keys/key-1", status: 200}},
		{"bulk-100", benchRequest{method: "POST", path: "/ofrep/v1/evaluate/flags", body: ctx, header: jsonType, status: 200}},
		{"bulk-100-304", benchRequest{method: "POST", path: "/ofrep/v1/evaluate/flags", body: ctx, header: jsonType, status: 304, notModified: true}},
	} {
		b.Run(e.name, func(b *testing.B) {
			f := start(b, serve.Options{})
			fillFlags(b, f, 100)
			if err := f.store.Set("ns", "key-1", "0123456789abcdef0123456789abcdef"); err != nil {
				b.Fatal(err)
			}
			benchAgainstBare(b, f, e.req)
		})
	}
}

// fillFlags stores n flags in the flags namespace, of every kind of
// value: booleans, numbers, strings, objects.
func fillFlags(b testing.TB, f *fixture, n int) {
	b.Helper()
	values := []string{"true", "false", "42", "2.5", `"blue"`, "plain text", `{"color":"blue","size":3}`, `[1,2,3]`}
	for i := range n {
		if err := f.store.Set("flags", fmt.Sprintf("flag-%03d", i), values[i%len(values)]); err != nil {
			b.Fatal(err)
		}
	}
}

// benchRequest is one request of the request benchmarks and the status it
// wants.
type benchRequest struct {
	method, path, body string
	header             map[string]string
	status             int
	// notModified: send If-None-Match with the ETag of the answer to the
	// same request without it.
	notModified bool
}

// new returns the request to base (http://HOST:PORT).
func (r benchRequest) new(base string) *http.Request {
	var body io.Reader
	if r.body != "" {
		body = bytes.NewReader([]byte(r.body))
	}
	req, err := http.NewRequest(r.method, base+r.path, body)
	if err != nil {
		panic(err)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	return req
}

// answer is a captured answer, which the bare handler writes again for
// every request: the same status, headers and body.
type answer struct {
	status int
	header http.Header // as the server sent them, Date aside
	body   []byte
}

// ServeHTTP is the bare handler: it reads the request's body and writes
// the answer, with as little work as net/http allows.
func (a *answer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	h := w.Header()
	for k, v := range a.header {
		h[k] = v
	}
	w.WriteHeader(a.status)
	w.Write(a.body)
}

// benchClient returns the client of the request benchmarks: HTTP/1.1,
// keep-alive, at most benchClients connections a server.
func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: benchClients,
		MaxConnsPerHost:     benchClients,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}}
}

// send sends req with c and reads the whole answer.
func send(c *http.Client, req *http.Request) (*http.Response, []byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// benchAgainstBare runs req against f's server and against a bare
// handler writing the server's answer, alternating, and reports the
// metrics of BenchmarkRequests.
func benchAgainstBare(b *testing.B, f *fixture, req benchRequest) {
	client := benchClient()
	defer client.CloseIdleConnections()
	if req.notModified {
		first := req
		first.status, first.header = 200, cloneHeader(req.header)
		resp, _, err := send(client, first.new(f.url))
		if err != nil {
			b.Fatal(err)
		}
		req.header = cloneHeader(req.header)
		req.header["If-None-Match"] = resp.Header.Get("ETag")
	}
	resp, body, err := send(client, req.new(f.url))
	if err != nil {
		b.Fatal(err)
	}
	if resp.StatusCode != req.status {
		b.Fatalf("%s %s = %d %q; want %d", req.method, req.path, resp.StatusCode, body, req.status)
	}
	a := &answer{status: resp.StatusCode, header: resp.Header.Clone(), body: body}
	a.header.Del("Date")
	bare := serveBare(b, a)

	hAllocs := handlerAllocs(f.srv, req)
	bareAllocs := handlerAllocs(a, req)

	// Warm both: every connection open, the code paths run.
	for _, base := range []string{f.url, bare} {
		if _, _, err := runLoad(client, base, req, 4*benchClients, nil); err != nil {
			b.Fatal(err)
		}
	}
	n := b.N
	lat := make([]time.Duration, n)
	bareLat := make([]time.Duration, n)
	var elapsed, bareElapsed time.Duration
	var mallocs, bareMallocs uint64
	b.ResetTimer()
	for done, round := 0, 0; done < n; round++ {
		m := min(n-done, 1000)
		sides := []func() error{
			func() error {
				d, allocs, err := runLoad(client, f.url, req, m, lat[done:done+m])
				elapsed, mallocs = elapsed+d, mallocs+allocs
				return err
			},
			func() error {
				d, allocs, err := runLoad(client, bare, req, m, bareLat[done:done+m])
				bareElapsed, bareMallocs = bareElapsed+d, bareMallocs+allocs
				return err
			},
		}
		if round%2 == 1 {
			slices.Reverse(sides)
		}
		for _, side := range sides {
			if err := side(); err != nil {
				b.Fatal(err)
			}
		}
		done += m
	}
	b.StopTimer()
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	slices.Sort(lat)
	slices.Sort(bareLat)
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(n), "ns/op")
	b.ReportMetric(float64(bareElapsed.Nanoseconds())/float64(n), "bare-ns/op")
	b.ReportMetric(float64(bareElapsed)/float64(elapsed), "vs-bare")
	b.ReportMetric(us(lat[n/2]), "p50-µs")
	b.ReportMetric(us(lat[n*99/100]), "p99-µs")
	b.ReportMetric(us(bareLat[n*99/100]), "bare-p99-µs")
	b.ReportMetric(hAllocs, "handler-allocs/req")
	b.ReportMetric(bareAllocs, "bare-handler-allocs/req")
	b.ReportMetric(float64(mallocs)/float64(n), "proc-allocs/req")
	b.ReportMetric(float64(bareMallocs)/float64(n), "bare-proc-allocs/req")
}

// cloneHeader returns a copy of h, never nil.
func cloneHeader(h map[string]string) map[string]string {
	c := make(map[string]string, len(h)+1)
	for k, v := range h {
		c[k] = v
	}
	return c
}

// serveBare serves h on a loopback port until the benchmark's end and
// returns its base URL.
func serveBare(b testing.TB, h http.Handler) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { hs.Serve(l); close(done) }()
	b.Cleanup(func() { hs.Close(); <-done })
	return "http://" + l.Addr().String()
}

// runLoad sends n requests req to base from benchClients goroutines at
// once, each sending its next as soon as its last is answered, and
// returns the wall time they took and the process's allocations
// meanwhile; lat, when not nil, receives each request's latency.
func runLoad(c *http.Client, base string, req benchRequest, n int, lat []time.Duration) (time.Duration, uint64, error) {
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	for range benchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || failed.Load() != nil {
					return
				}
				t0 := time.Now()
				resp, body, err := send(c, req.new(base))
				if err == nil && resp.StatusCode != req.status {
					err = fmt.Errorf("%s %s = %d %q; want %d", req.method, req.path, resp.StatusCode, body, req.status)
				}
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				if lat != nil {
					lat[i] = time.Since(t0)
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	runtime.ReadMemStats(&after)
	if err := failed.Load(); err != nil {
		return d, 0, *err
	}
	return d, after.Mallocs - before.Mallocs, nil
}

// handlerAllocs returns the allocations of one call of h.ServeHTTP for
// req, the request and the response writer reused: the handler's own,
// without net/http's reading of the request and writing of the answer.
func handlerAllocs(h http.Handler, req benchRequest) float64 {
	r := req.new("http://127.0.0.1")
	body := bytes.NewReader([]byte(req.body))
	r.Body = io.NopCloser(body)
	w := &discardWriter{h: make(http.Header)}
	return testing.AllocsPerRun(1000, func() {
		body.Reset([]byte(req.body))
		clear(w.h)
		h.ServeHTTP(w, r)
	})
}

// discardWriter is an http.ResponseWriter that keeps nothing but its
// header map, which the caller clears.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}
