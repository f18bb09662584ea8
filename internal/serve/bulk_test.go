package serve_test

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/internal/serve"
)

// bulkFlags sends a bulk evaluation with If-None-Match: etag (none when
// "") and returns its status, its ETag and its flags' values by key.
func bulkFlags(t *testing.T, f *fixture, etag string) (int, string, map[string]any) {
	t.Helper()
	req := request{method: "POST", path: "/ofrep/v1/evaluate/flags", body: `{}`}
	if etag != "" {
		req.header = map[string]string{"If-None-Match": etag}
	}
	resp, body := f.do(t, req)
	values := map[string]any{}
	if resp.StatusCode == 200 {
		var got struct {
			Flags []struct {
				Key   string
				Value any
			}
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("bulk answer %q: %v", body, err)
		}
		for _, fl := range got.Flags {
			values[fl.Key] = fl.Value
		}
	}
	return resp.StatusCode, resp.Header.Get("ETag"), values
}

// TestBulkCache checks that the cached bulk evaluation never answers
// for a flag set that is no longer the namespace's: a flag written or
// deleted through the server is in the very next answer (the cache
// would otherwise wait for the Store's Watch to report it), a flag that
// expires is out of the next answer (no event reports it before a sweep
// deletes it), a write by another process is in an answer within its
// Store's SyncInterval and the Watch's delivery, and a closed Store is
// answered 500.
func TestBulkCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bulk.db")
	clock := time.Now()
	s, err := opstate.Open(path, opstate.Options{SweepInterval: -1, Clock: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f := serveStore(t, s, serve.Options{})
	if err := s.Set("flags", "a", "1"); err != nil {
		t.Fatal(err)
	}
	_, etag, _ := bulkFlags(t, f, "")

	// Through the server: in the next answer, every time.
	for i := range 30 {
		k := "n" + strconv.Itoa(i)
		f.want(t, 204, request{method: "PUT", path: keyPath("flags", k), body: "true"})
		code, next, values := bulkFlags(t, f, etag)
		if code != 200 || values[k] != true {
			t.Fatalf("after PUT %s: %d, flags %v; want 200 with %s", k, code, values, k)
		}
		f.want(t, 204, request{method: "DELETE", path: keyPath("flags", k)})
		code, etag, values = bulkFlags(t, f, next)
		if _, ok := values[k]; code != 200 || ok {
			t.Fatalf("after DELETE %s: %d, flags %v; want 200 without %s", k, code, values, k)
		}
	}
	f.want(t, 204, request{method: "PUT", path: keyPath("flags", "a"), body: "2", header: map[string]string{"If-Match": etagOf("1")}})
	if code, next, values := bulkFlags(t, f, etag); code != 200 || values["a"] != 2.0 {
		t.Fatalf("after a conditional PUT: %d, flags %v; want a = 2", code, values)
	} else {
		etag = next
	}

	// A flag that expires.
	if err := s.SetWithTTL("flags", "ttl", "1", time.Minute); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the flag with a TTL in the bulk answer", func() bool {
		code, next, values := bulkFlags(t, f, etag)
		if code == 200 && values["ttl"] == 1.0 {
			etag = next
			return true
		}
		return false
	})
	f.want(t, 304, request{method: "POST", path: "/ofrep/v1/evaluate/flags", body: `{}`, header: map[string]string{"If-None-Match": etag}})
	clock = clock.Add(2 * time.Minute)
	if code, next, values := bulkFlags(t, f, etag); code != 200 || values["ttl"] != nil {
		t.Fatalf("after the flag expired: %d, flags %v; want 200 without ttl", code, values)
	} else {
		etag = next
	}

	// Another process.
	w := startChild(t, "writer", path)
	if got := w.ask(t, "flags a 3"); got != "ok" {
		t.Fatalf("writer: %s", got)
	}
	waitFor(t, "another process's write in the bulk answer", func() bool {
		code, _, values := bulkFlags(t, f, etag)
		return code == 200 && values["a"] == 3.0
	})

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := bulkFlags(t, f, etag); code != 500 {
		t.Errorf("bulk after the Store closed: %d; want 500", code)
	}
}
