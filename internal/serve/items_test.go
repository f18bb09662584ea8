package serve_test

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/internal/persist"
	"github.com/d8da9184/opstate/internal/serve"
	"github.com/d8da9184/opstate/storage"
)

// itemsOf is the answer of GET /v1/namespaces/{ns}?expiry=1.
type itemsOf map[string]struct {
	Value   string  `json:"value"`
	Expires *string `json:"expires"`
}

// TestNamespaceExpiry checks GET /v1/namespaces/{ns}?expiry=1: each live
// key's value and its expiry (RFC 3339 with milliseconds, UTC, of the
// Store's clock), none for a key that never expires, expired keys left
// out, names of any text; the answer without the parameter unchanged;
// any other query refused.
func TestNamespaceExpiry(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 12, 7, 18, 0, 0, 0, time.FixedZone("x", 3600)).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	s, err := opstate.Open(filepath.Join(t.TempDir(), "serve.db"), opstate.Options{Clock: clock, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f := serveStore(t, s, serve.Options{})

	names := []string{"plain", "a/b", "50%", "two words", "a+b", "caf\u00e9", "..", ".", "%2F", "?x=1#y", "expiry=1", "née/..//", `<img src=x onerror=alert(1)>`}
	for _, ns := range names {
		for _, key := range names {
			if err := s.SetWithTTL(ns, key, "ttl "+key, 90*time.Second); err != nil {
				t.Fatal(err)
			}
			if err := s.Set(ns, "never "+key, key); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SetWithTTL(ns, "soon", "x", time.Second); err != nil {
			t.Fatal(err)
		}
	}
	now.Add(int64(time.Second)) // soon has expired
	const expires = "2026-12-07T17:01:30.000Z"
	for _, ns := range names {
		path := "/v1/namespaces/" + escape(ns)
		_, body := f.want(t, http.StatusOK, request{method: "GET", path: path + "?expiry=1"})
		var got itemsOf
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("GET %s?expiry=1 = %q: %v", path, body, err)
		}
		if len(got) != 2*len(names) {
			t.Errorf("GET %s?expiry=1 has %d keys; want %d", path, len(got), 2*len(names))
		}
		for _, key := range names {
			if it, ok := got[key]; !ok || it.Value != "ttl "+key || it.Expires == nil || *it.Expires != expires {
				t.Errorf("GET %s?expiry=1 [%q] = %+v, %v; want value %q, expires %s", path, key, it, ok, "ttl "+key, expires)
			}
			if it, ok := got["never "+key]; !ok || it.Value != key || it.Expires != nil {
				t.Errorf("GET %s?expiry=1 [%q] = %+v, %v; want value %q, no expires", path, "never "+key, it, ok, key)
			}
		}
		if strings.Contains(body, `"expires":null`) || strings.Contains(body, "<img") {
			t.Errorf("GET %s?expiry=1 = %q; want expires left out when never, markup escaped", path, body)
		}
		// Without the parameter: the plain answer, as before.
		_, body = f.want(t, http.StatusOK, request{method: "GET", path: path})
		var plain map[string]string
		if err := json.Unmarshal([]byte(body), &plain); err != nil || len(plain) != 2*len(names) || plain["never plain"] != "plain" {
			t.Errorf("GET %s = %q, %v; want {KEY: VALUE}", path, trim(body), err)
		}
	}

	_, body := f.want(t, http.StatusOK, request{method: "GET", path: "/v1/namespaces/none?expiry=1"})
	if strings.TrimSpace(body) != "{}" {
		t.Errorf("GET of an empty namespace ?expiry=1 = %q; want {}", body)
	}
	for _, q := range []string{"expiry=0", "expiry=", "expiry", "expiry=1&expiry=1", "expiry=1&x=1", "x=1", "EXPIRY=1"} {
		f.want(t, http.StatusBadRequest, request{method: "GET", path: "/v1/namespaces/plain?" + q})
	}
	f.want(t, http.StatusBadRequest, request{method: "DELETE", path: "/v1/namespaces/plain?expiry=1"})
	if m, _ := s.List("plain"); len(m) != 2*len(names) {
		t.Errorf("after a refused DELETE ?expiry=1, plain holds %d keys; want %d", len(m), 2*len(names))
	}

	// Not valid UTF-8: a clear error naming the key, not an altered value.
	if err := s.Set("bin", "k\xff", "v"); err != nil {
		t.Fatal(err)
	}
	_, body = f.want(t, http.StatusInternalServerError, request{method: "GET", path: "/v1/namespaces/bin?expiry=1"})
	if !strings.Contains(body, `k\\xff`) || !strings.Contains(body, "not valid UTF-8") {
		t.Errorf("GET ?expiry=1 of a namespace with a non-UTF-8 key = %q; want an error naming it", body)
	}
}

// noRows is the SQLite backend with every method but Backend's hidden:
// it cannot list expiries.
type noRows struct{ storage.Backend }

// TestNamespaceExpiryUnsupported checks that ?expiry=1 over a backend
// that cannot list expiries answers 501, and the plain listing works.
func TestNamespaceExpiryUnsupported(t *testing.T) {
	db, err := persist.Open(filepath.Join(t.TempDir(), "serve.db"), persist.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := opstate.OpenBackend(noRows{db}, opstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Set("ns", "k", "v"); err != nil {
		t.Fatal(err)
	}
	f := serveStore(t, s, serve.Options{})
	f.want(t, http.StatusNotImplemented, request{method: "GET", path: "/v1/namespaces/ns?expiry=1"})
	_, body := f.want(t, http.StatusOK, request{method: "GET", path: "/v1/namespaces/ns"})
	var plain map[string]string
	if err := json.Unmarshal([]byte(body), &plain); err != nil || !reflect.DeepEqual(plain, map[string]string{"k": "v"}) {
		t.Errorf("GET /v1/namespaces/ns = %q; want {k: v}", body)
	}
}
