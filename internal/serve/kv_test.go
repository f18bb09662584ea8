package serve_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate/internal/serve"
)

// keyPath returns the path of key in ns, each name percent-encoded as a
// path segment.
func keyPath(ns, key string) string {
	return "/v1/namespaces/" + escape(ns) + "/keys/" + escape(key)
}

// escape percent-encodes every byte of name but letters, digits, '-',
// '_' and '~': "." and ".." too, which url.PathEscape leaves as they are.
func escape(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// TestKeyRoundTrip checks that values and names of any bytes go in by
// PUT and come back by GET, byte for byte, through percent-encoding, and
// are the Store's: a Lookup sees what a PUT stored, a GET what a Set did.
func TestKeyRoundTrip(t *testing.T) {
	f := start(t, serve.Options{})
	names := []string{"plain", "a/b", "50%", "two words", "a+b", "\xff\xfe", "caf\u00e9", "..", ".", "%2F", "?x=1#y", "née/..//"}
	values := []string{"on", "", "a\x00\xff\nb", strings.Repeat("x", 100_000), `{"a":1}`}
	for i, ns := range names {
		for j, key := range names {
			v := values[(i+j)%len(values)]
			resp, _ := f.want(t, http.StatusNoContent, request{method: "PUT", path: keyPath(ns, key), body: v})
			if got, want := resp.Header.Get("ETag"), etagOf(v); got != want {
				t.Errorf("PUT %q/%q ETag = %q; want %q", ns, key, got, want)
			}
			got, ok, err := f.store.Lookup(ns, key)
			if err != nil || !ok || got != v {
				t.Fatalf("Lookup(%q, %q) after PUT = %q, %v, %v; want the body", ns, key, trim(got), ok, err)
			}
			resp, body := f.want(t, http.StatusOK, request{method: "GET", path: keyPath(ns, key)})
			if body != v {
				t.Errorf("GET %q/%q = %q; want %q", ns, key, trim(body), trim(v))
			}
			if got := resp.Header.Get("ETag"); got != etagOf(v) {
				t.Errorf("GET %q/%q ETag = %q; want %q", ns, key, got, etagOf(v))
			}
		}
	}
	// A key set by the Store reads back over HTTP.
	if err := f.store.Set("a/b", "%2F", "from the store"); err != nil {
		t.Fatal(err)
	}
	if _, body := f.want(t, http.StatusOK, request{method: "GET", path: keyPath("a/b", "%2F")}); body != "from the store" {
		t.Errorf("GET after Set = %q; want %q", body, "from the store")
	}
}

// etagOf returns the ETag the server gives value v, computed here
// independently: SHA-256, unpadded base64url, quoted.
func etagOf(v string) string {
	sum := sha256.Sum256([]byte(v))
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:]) + `"`
}

func trim(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// TestKeyStatuses checks the status and error body of each answer of the
// key endpoint.
func TestKeyStatuses(t *testing.T) {
	f := start(t, serve.Options{MaxValueBytes: 10})
	if err := f.store.Set("ns", "k", "v"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		req  request
		code int
		msg  string // in the error, "" for no error body
	}{
		{"get missing", request{method: "GET", path: keyPath("ns", "nope")}, 404, `no key "nope" in namespace "ns"`},
		{"get empty key", request{method: "GET", path: "/v1/namespaces/ns/keys/"}, 400, "empty namespace or key"},
		{"get empty ns", request{method: "GET", path: "/v1/namespaces//keys/k"}, 400, "empty namespace or key"},
		{"put empty key", request{method: "PUT", path: "/v1/namespaces/ns/keys/", body: "x"}, 400, "empty namespace or key"},
		{"put bad ttl", request{method: "PUT", path: keyPath("ns", "k") + "?ttl=soon", body: "x"}, 400, `ttl "soon" is not a positive duration`},
		{"put zero ttl", request{method: "PUT", path: keyPath("ns", "k") + "?ttl=0s", body: "x"}, 400, "not a positive duration"},
		{"put negative ttl", request{method: "PUT", path: keyPath("ns", "k") + "?ttl=-1m", body: "x"}, 400, "not a positive duration"},
		{"put two ttls", request{method: "PUT", path: keyPath("ns", "k") + "?ttl=1m&ttl=2m", body: "x"}, 400, "ttl, at most once"},
		{"put unknown param", request{method: "PUT", path: keyPath("ns", "k") + "?expire=1m", body: "x"}, 400, "one query parameter"},
		{"get with param", request{method: "GET", path: keyPath("ns", "k") + "?x=1"}, 400, "no query parameters"},
		{"put too large", request{method: "PUT", path: keyPath("ns", "k"), body: "12345678901"}, 413, "over the limit of 10"},
		{"put at limit", request{method: "PUT", path: keyPath("ns", "limit"), body: "1234567890"}, 204, ""},
		{"put both preconditions", request{method: "PUT", path: keyPath("ns", "k"), body: "x",
			header: map[string]string{"If-Match": "*", "If-None-Match": "*"}}, 400, "together"},
		{"put If-None-Match tag", request{method: "PUT", path: keyPath("ns", "k"), body: "x",
			header: map[string]string{"If-None-Match": `"abc"`}}, 400, "takes only *"},
		{"delete If-None-Match", request{method: "DELETE", path: keyPath("ns", "k"),
			header: map[string]string{"If-None-Match": "*"}}, 400, "not taken on DELETE"},
		{"post", request{method: "POST", path: keyPath("ns", "k"), body: "x"}, 405, "method POST is not allowed"},
		{"unknown path", request{method: "GET", path: "/v1/keys"}, 404, "no such endpoint"},
		{"dot dot", request{method: "GET", path: "/v1/namespaces/ns/keys/../../namespaces"}, 400, "segment . or .. is not taken"},
		{"dot", request{method: "GET", path: "/v1/namespaces/./keys/k"}, 400, "segment . or .. is not taken"},
		{"delete missing", request{method: "DELETE", path: keyPath("ns", "nope")}, 204, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := f.want(t, tt.code, tt.req)
			if tt.msg == "" {
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q; want application/json", ct)
			}
			var e struct{ Error string }
			if err := json.Unmarshal([]byte(body), &e); err != nil || !strings.Contains(e.Error, tt.msg) {
				t.Errorf("body %q; want {\"error\": ...%s...}", body, tt.msg)
			}
		})
	}
	if v, _ := f.store.Get("ns", "k"); v != "v" {
		t.Errorf("after the refused writes, ns/k = %q; want v, unchanged", v)
	}
}

// TestPathTricks checks that encoded dots and double encoding name keys
// and nothing else: %2E%2E is the key "..", %252F the key "%2F", neither
// reaches another key or namespace.
func TestPathTricks(t *testing.T) {
	f := start(t, serve.Options{})
	f.want(t, 204, request{method: "PUT", path: "/v1/namespaces/ns/keys/%2E%2E", body: "dots"})
	f.want(t, 204, request{method: "PUT", path: "/v1/namespaces/ns/keys/%252F", body: "double"})
	f.want(t, 204, request{method: "PUT", path: "/v1/namespaces/ns/keys/%2F", body: "slash"})
	for key, want := range map[string]string{"..": "dots", "%2F": "double", "/": "slash"} {
		if v, _ := f.store.Get("ns", key); v != want {
			t.Errorf("Get(ns, %q) = %q; want %q", key, v, want)
		}
	}
	m, _ := f.store.List("ns")
	if len(m) != 3 {
		t.Errorf("ns holds %v; want the three keys alone", m)
	}
	// ".." encoded in the namespace is a namespace named "..".
	f.want(t, 204, request{method: "PUT", path: "/v1/namespaces/%2E%2E/keys/k", body: "x"})
	if v, _ := f.store.Get("..", "k"); v != "x" {
		t.Errorf(`Get("..", k) = %q; want x`, v)
	}
	// A raw .. is refused, not resolved, even where it would resolve to
	// an existing key.
	f.want(t, 400, request{method: "GET", path: "/v1/namespaces/ns/keys/x/../%2E%2E"})
	// A bad escape, which net/http's client would not send, is refused.
	if got := rawRequest(t, f.addr, "GET /v1/namespaces/ns/keys/%zz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 400 ") {
		t.Errorf("GET of a path with %%zz = %q; want 400", trim(got))
	}
}

// TestConditionalWrites checks If-None-Match: * (SetIfAbsent) and
// If-Match (CompareAndSwap, CompareAndDelete): each failed precondition
// is 412 and changes nothing.
func TestConditionalWrites(t *testing.T) {
	f := start(t, serve.Options{})
	p := keyPath("locks", "leader")
	absent := map[string]string{"If-None-Match": "*"}
	f.want(t, 204, request{method: "PUT", path: p, body: "a", header: absent})
	f.want(t, 412, request{method: "PUT", path: p, body: "b", header: absent})
	if v, _ := f.store.Get("locks", "leader"); v != "a" {
		t.Fatalf("after a refused If-None-Match: *, value = %q; want a", v)
	}
	// If-Match with the current ETag swaps; with an old one, 412.
	ea := etagOf("a")
	f.want(t, 204, request{method: "PUT", path: p, body: "b", header: map[string]string{"If-Match": ea}})
	f.want(t, 412, request{method: "PUT", path: p, body: "c", header: map[string]string{"If-Match": ea}})
	// A weak tag never matches If-Match.
	f.want(t, 412, request{method: "PUT", path: p, body: "c", header: map[string]string{"If-Match": "W/" + etagOf("b")}})
	// A list matches if one of its tags does; * if the key exists.
	f.want(t, 204, request{method: "PUT", path: p, body: "c", header: map[string]string{"If-Match": ea + ", " + etagOf("b")}})
	f.want(t, 204, request{method: "PUT", path: p, body: "d", header: map[string]string{"If-Match": "*"}})
	if v, _ := f.store.Get("locks", "leader"); v != "d" {
		t.Fatalf("value = %q; want d", v)
	}
	f.want(t, 412, request{method: "PUT", path: keyPath("locks", "none"), body: "x", header: map[string]string{"If-Match": "*"}})
	f.want(t, 412, request{method: "DELETE", path: p, header: map[string]string{"If-Match": etagOf("c")}})
	if v, _ := f.store.Get("locks", "leader"); v != "d" {
		t.Fatalf("after a refused DELETE, value = %q; want d", v)
	}
	f.want(t, 204, request{method: "DELETE", path: p, header: map[string]string{"If-Match": etagOf("d")}})
	if _, ok, _ := f.store.Lookup("locks", "leader"); ok {
		t.Fatal("the key is there after DELETE with a matching If-Match")
	}
	// With ?ttl=, the conditional writes set an expiry.
	f.want(t, 204, request{method: "PUT", path: p + "?ttl=1h", body: "lease", header: absent})
	f.want(t, 204, request{method: "PUT", path: p + "?ttl=1h", body: "renewed", header: map[string]string{"If-Match": etagOf("lease")}})
	// GET with a matching If-None-Match is 304 with no body.
	resp, body := f.want(t, 304, request{method: "GET", path: p, header: map[string]string{"If-None-Match": etagOf("renewed")}})
	if body != "" || resp.Header.Get("ETag") != etagOf("renewed") {
		t.Errorf("304: body %q, ETag %q; want none, %q", body, resp.Header.Get("ETag"), etagOf("renewed"))
	}
}

// TestTTL checks that ?ttl= sets an expiry: the key reads as missing
// (404) once it has passed.
func TestTTL(t *testing.T) {
	f := start(t, serve.Options{})
	f.want(t, 204, request{method: "PUT", path: keyPath("s", "k") + "?ttl=50ms", body: "soon"})
	f.want(t, 204, request{method: "PUT", path: keyPath("s", "long") + "?ttl=1h", body: "later"})
	deadline := time.Now().Add(wait)
	for {
		resp, _ := f.do(t, request{method: "GET", path: keyPath("s", "k")})
		if resp.StatusCode == 404 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET of a key with ttl=50ms still %d after %v", resp.StatusCode, wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.want(t, 200, request{method: "GET", path: keyPath("s", "long")})
}

// TestNamespaces checks the namespace endpoints: the listing of
// namespaces with their live key counts, a namespace's keys and values,
// its deletion, and the refusal of what JSON cannot hold exactly.
func TestNamespaces(t *testing.T) {
	f := start(t, serve.Options{})
	_, body := f.want(t, 200, request{method: "GET", path: "/v1/namespaces"})
	if strings.TrimSpace(body) != "{}" {
		t.Errorf("GET /v1/namespaces of an empty store = %q; want {}", body)
	}
	for k, v := range map[string]string{"a": "1", "b": "two <words>\n", "c/d": ""} {
		if err := f.store.Set("flags", k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.store.Set("other ns", "x", "y"); err != nil {
		t.Fatal(err)
	}
	if err := f.store.SetWithTTL("other ns", "gone", "y", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	_, body = f.want(t, 200, request{method: "GET", path: "/v1/namespaces"})
	var counts map[string]int
	if err := json.Unmarshal([]byte(body), &counts); err != nil || !reflect.DeepEqual(counts, map[string]int{"flags": 3, "other ns": 1}) {
		t.Errorf("GET /v1/namespaces = %q; want flags 3, other ns 1", body)
	}
	_, body = f.want(t, 200, request{method: "GET", path: "/v1/namespaces/flags"})
	var kv map[string]string
	if err := json.Unmarshal([]byte(body), &kv); err != nil || !reflect.DeepEqual(kv, map[string]string{"a": "1", "b": "two <words>\n", "c/d": ""}) {
		t.Errorf("GET /v1/namespaces/flags = %q", body)
	}
	_, body = f.want(t, 200, request{method: "GET", path: "/v1/namespaces/none"})
	if strings.TrimSpace(body) != "{}" {
		t.Errorf("GET of an empty namespace = %q; want {}", body)
	}
	f.want(t, 204, request{method: "DELETE", path: "/v1/namespaces/flags"})
	if m, _ := f.store.List("flags"); len(m) != 0 {
		t.Errorf("after DELETE, flags holds %v", m)
	}
	f.want(t, 400, request{method: "DELETE", path: "/v1/namespaces/"})
	f.want(t, 405, request{method: "PUT", path: "/v1/namespaces/flags", body: "x"})

	// Not valid UTF-8: a clear error naming the key, not an altered value.
	if err := f.store.Set("bin", "k\xff", "v"); err != nil {
		t.Fatal(err)
	}
	_, body = f.want(t, 500, request{method: "GET", path: "/v1/namespaces/bin"})
	if !strings.Contains(body, `k\\xff`) || !strings.Contains(body, "not valid UTF-8") {
		t.Errorf("GET of a namespace with a non-UTF-8 key = %q; want an error naming it", body)
	}
	if err := f.store.Set("bin\xfe", "k", "v"); err != nil {
		t.Fatal(err)
	}
	_, body = f.want(t, 500, request{method: "GET", path: "/v1/namespaces"})
	if !strings.Contains(body, `bin\\xfe`) {
		t.Errorf("GET /v1/namespaces with a non-UTF-8 namespace = %q; want an error naming it", body)
	}
	// The key itself is served byte for byte.
	if _, body := f.want(t, 200, request{method: "GET", path: keyPath("bin", "k\xff")}); body != "v" {
		t.Errorf("GET bin/k\\xff = %q; want v", body)
	}
}
