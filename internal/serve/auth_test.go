package serve_test

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate/internal/serve"
)

// Secrets of the tests' tokens.
const (
	readSecret  = "read-secret-0123456789abcdefghijklmnopqrstu" // 43 bytes, as opstate token makes them
	writeSecret = "write-secret-0123456789abcdefghijklmnopqrst"
)

// testTokens returns the tokens "reader" (read) and "writer" (write).
func testTokens(t *testing.T) *serve.Tokens {
	t.Helper()
	toks, err := serve.ParseTokens(strings.NewReader(hashLine("reader", "read", readSecret)+"\n"+
		hashLine("writer", "write", writeSecret)+"\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	return toks
}

// TestAuth checks who is admitted to what: no token, a wrong one, a
// too-long one and another scheme are 401, a read token writing 403;
// either of OFREP's two headers works, and no answer quotes a secret.
func TestAuth(t *testing.T) {
	f := start(t, serve.Options{Tokens: testTokens(t)})
	if err := f.store.Set("flags", "dark_mode", "true"); err != nil {
		t.Fatal(err)
	}
	bearer := func(s string) map[string]string { return map[string]string{"Authorization": "Bearer " + s} }
	apiKey := func(s string) map[string]string { return map[string]string{"X-API-Key": s} }
	get := func(h map[string]string) request {
		return request{method: "GET", path: keyPath("flags", "dark_mode"), header: h}
	}
	put := func(h map[string]string) request {
		return request{method: "PUT", path: keyPath("flags", "dark_mode"), body: "false", header: h}
	}
	wrong := strings.Repeat("w", len(readSecret))
	for _, tt := range []struct {
		name string
		req  request
		code int
	}{
		{"no token", get(nil), 401},
		{"no token, unknown path", request{method: "GET", path: "/nowhere"}, 401},
		{"no token, OFREP", request{method: "POST", path: "/ofrep/v1/evaluate/flags/dark_mode", body: "{}"}, 401},
		{"no token, events", request{method: "GET", path: "/v1/namespaces/flags/events"}, 401},
		{"wrong token", get(bearer(wrong)), 401},
		{"wrong api key", get(apiKey(wrong)), 401},
		{"too long", get(bearer(readSecret + strings.Repeat("x", serve.MaxSecret))), 401},
		{"secret as prefix", get(bearer(readSecret[:20])), 401},
		{"basic scheme", get(map[string]string{"Authorization": "Basic " + readSecret}), 401},
		{"empty bearer", get(bearer("")), 401},
		{"bearer read", get(bearer(readSecret)), 200},
		{"bearer lowercase scheme", get(map[string]string{"Authorization": "bearer " + readSecret}), 200},
		{"api key read", get(apiKey(readSecret)), 200},
		{"read token writing", put(bearer(readSecret)), 403},
		{"read token deleting", request{method: "DELETE", path: "/v1/namespaces/flags", header: apiKey(readSecret)}, 403},
		{"read token evaluating", request{method: "POST", path: "/ofrep/v1/evaluate/flags/dark_mode", body: "{}", header: bearer(readSecret)}, 200},
		{"write token writing", put(apiKey(writeSecret)), 204},
		{"write token reading", get(bearer(writeSecret)), 200},
		{"preflight needs none", request{method: "OPTIONS", path: keyPath("flags", "dark_mode")}, 204},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := f.want(t, tt.code, tt.req)
			for _, s := range []string{readSecret, writeSecret, wrong} {
				if strings.Contains(body, s) || strings.Contains(body, s[:20]) {
					t.Errorf("answer %q quotes a secret", body)
				}
			}
			if tt.code == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if v, _ := f.store.Get("flags", "dark_mode"); v != "false" {
		t.Errorf("dark_mode = %q; want false, from the write token alone", v)
	}
}

// TestSetTokens checks that replaced tokens apply to the next request:
// a removed token is refused, an added one admitted, a scope change
// applies; and that a Server with tokens refuses to drop them all.
func TestSetTokens(t *testing.T) {
	f := start(t, serve.Options{Tokens: testTokens(t)})
	bearer := func(s string) map[string]string { return map[string]string{"Authorization": "Bearer " + s} }
	p := keyPath("ns", "k")
	f.want(t, 204, request{method: "PUT", path: p, body: "1", header: bearer(writeSecret)})
	toks, err := serve.ParseTokens(strings.NewReader(hashLine("writer", "read", writeSecret)+"\n"+hashLine("new", "write", "new-secret")), "new")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.srv.SetTokens(toks); err != nil {
		t.Fatal(err)
	}
	f.want(t, 401, request{method: "GET", path: p, header: bearer(readSecret)})
	f.want(t, 403, request{method: "PUT", path: p, body: "2", header: bearer(writeSecret)})
	f.want(t, 204, request{method: "PUT", path: p, body: "3", header: bearer("new-secret")})
	if err := f.srv.SetTokens(nil); err == nil {
		t.Error("SetTokens(nil) on a Server with tokens: no error")
	}
	f.want(t, 401, request{method: "GET", path: p})
}

// TestAuthTiming checks that the time to refuse a wrong secret does not
// tell its sender anything about the right ones: not their length (a
// wrong secret of the right length against shorter and longer ones, up
// to MaxSecret and past it), nor whether a prefix is right. Each
// candidate's time is measured in-process, the candidates interleaved
// round after round in a new random order each round, and their medians
// must agree within a generous factor: a check that returned early on a
// length or a prefix would differ by far more.
//
// The time measured is the processor time of the test's thread
// (threadTime), not the wall clock's: on a loaded machine a thread spends
// much of a measurement waiting for a processor, unevenly from one
// measurement to the next, which moved the wall clock's medians apart by
// more than the factor with nothing wrong in the comparison.
func TestAuthTiming(t *testing.T) {
	var lines []string
	for i := range 16 {
		_, line, err := serve.NewToken("t"+strings.Repeat("x", i), serve.ScopeRead)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line)
	}
	lines = append(lines, hashLine("known", "read", readSecret))
	toks, err := serve.ParseTokens(strings.NewReader(strings.Join(lines, "\n")), "timing")
	if err != nil {
		t.Fatal(err)
	}
	candidates := []struct {
		name, secret string
	}{
		{"right length", strings.Repeat("w", len(readSecret))},
		{"right length, right prefix", readSecret[:len(readSecret)-1] + "!"},
		{"shorter, 1", "w"},
		{"shorter, 16", strings.Repeat("w", 16)},
		{"longer, 55", strings.Repeat("w", 55)},
		{"longer, 100", strings.Repeat("w", 100)},
		{"longest, MaxSecret", strings.Repeat("w", serve.MaxSecret)},
		{"too long", strings.Repeat("w", 10*serve.MaxSecret)},
	}
	const rounds, calls = 201, 200
	times := make([][]time.Duration, len(candidates))
	runtime.LockOSThread() // threadTime is the thread's
	defer runtime.UnlockOSThread()
	for range rounds {
		for _, i := range rand.Perm(len(candidates)) {
			c := candidates[i]
			start := threadTime()
			for range calls {
				if _, ok := serve.Authenticate(toks, c.secret); ok {
					t.Fatalf("%s admitted", c.name)
				}
			}
			times[i] = append(times[i], (threadTime()-start)/calls)
		}
	}
	medians := make([]time.Duration, len(candidates))
	for i := range times {
		slices.Sort(times[i])
		medians[i] = times[i][rounds/2]
		t.Logf("%-28s median %v per call (%s)", candidates[i].name, medians[i], threadClock)
	}
	lo, hi := slices.Min(medians), slices.Max(medians)
	if float64(hi) > 1.5*float64(lo) {
		t.Errorf("refusing a wrong secret takes %v to %v of %s depending on the secret (medians %v); want them within 1.5x",
			lo, hi, threadClock, medians)
	}
}

// TestRebinding attacks the open server (no tokens, loopback only) as a web
// page elsewhere would through DNS rebinding: its requests name the
// page's host, which now resolves to 127.0.0.1. Reads, writes and event
// streams naming any host but a loopback one are 403 and change nothing;
// localhost, names under it and loopback addresses, with or without a
// port, are served; with tokens, the token decides, whatever the host.
func TestRebinding(t *testing.T) {
	f := start(t, serve.Options{})
	if err := f.store.Set("flags", "dark_mode", "true"); err != nil {
		t.Fatal(err)
	}
	host := func(h string) map[string]string { return map[string]string{"Host": h} }
	for _, h := range []string{"evil.example", "evil.example:8047", "127.0.0.1.evil.example", "localhost.evil.example",
		"10.0.0.1", "[fe80::1]:8047", "0.0.0.0", "LOCALHOST.evil.example"} {
		for _, req := range []request{
			{method: "GET", path: keyPath("flags", "dark_mode"), header: host(h)},
			{method: "PUT", path: keyPath("flags", "dark_mode"), body: "false", header: host(h)},
			{method: "DELETE", path: "/v1/namespaces/flags", header: host(h)},
			{method: "POST", path: "/ofrep/v1/evaluate/flags", body: "{}", header: host(h)},
			{method: "GET", path: "/v1/namespaces/flags/events", header: host(h)},
		} {
			_, body := f.want(t, 403, req)
			if strings.Contains(body, "true") {
				t.Errorf("Host %q: %s %s answered with the value: %q", h, req.method, req.path, body)
			}
		}
	}
	if v, err := f.store.Get("flags", "dark_mode"); err != nil || v != "true" {
		t.Fatalf("after the refused writes, dark_mode = %q, %v; want \"true\"", v, err)
	}
	for _, h := range []string{"localhost", "localhost:8047", "LocalHost:1", "app.localhost", "127.0.0.1", "127.0.0.2:8047", "[::1]:8047", "::1"} {
		f.want(t, 200, request{method: "GET", path: keyPath("flags", "dark_mode"), header: host(h)})
	}

	g := start(t, serve.Options{Tokens: testTokens(t)})
	g.want(t, 401, request{method: "GET", path: keyPath("flags", "dark_mode"), header: host("flags.example.com")})
	g.want(t, 404, request{method: "GET", path: keyPath("flags", "dark_mode"),
		header: map[string]string{"Host": "flags.example.com", "Authorization": "Bearer " + readSecret}})
}
