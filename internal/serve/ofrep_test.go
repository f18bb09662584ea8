package serve_test

import (
	"encoding/json"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate/internal/serve"
)

// TestOFREPFlag checks the single-flag evaluation: each stored value read
// as JSON (a value that is not JSON as the string itself), reason STATIC,
// the namespace in the metadata, and the spec's failures.
func TestOFREPFlag(t *testing.T) {
	f := start(t, serve.Options{FlagsNamespace: "toggles"})
	for _, tt := range []struct {
		stored string
		value  any
	}{
		{"true", true},
		{"false", false},
		{"3", 3.0},
		{"2.5", 2.5},
		{`{"a":1}`, map[string]any{"a": 1.0}},
		{`"text"`, "text"},
		{"plain text", "plain text"},
		{"", ""},
		{"caf\u00e9 <b>", "caf\u00e9 <b>"},
		{" [1, 2] ", []any{1.0, 2.0}},
	} {
		if err := f.store.Set("toggles", "f", tt.stored); err != nil {
			t.Fatal(err)
		}
		_, body := f.want(t, 200, request{method: "POST", path: "/ofrep/v1/evaluate/flags/f", body: `{"context":{"targetingKey":"u1","plan":"pro"}}`})
		var got struct {
			Key      string
			Value    any
			Reason   string
			Metadata map[string]any
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("stored %q: answer %q: %v", tt.stored, body, err)
		}
		if got.Key != "f" || !reflect.DeepEqual(got.Value, tt.value) || got.Reason != "STATIC" ||
			!reflect.DeepEqual(got.Metadata, map[string]any{"namespace": "toggles"}) {
			t.Errorf("stored %q: answer %s; want key f, value %#v, reason STATIC, metadata namespace toggles", tt.stored, body, tt.value)
		}
	}
	// A flag in another namespace, or with a key holding '/' sent as it
	// is (OFREP's providers do not escape it), or escaped.
	if err := f.store.Set("flags", "elsewhere", "true"); err != nil {
		t.Fatal(err)
	}
	if err := f.store.Set("toggles", "team/a b", "1"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/ofrep/v1/evaluate/flags/team/a%20b", "/ofrep/v1/evaluate/flags/team%2Fa%20b"} {
		if _, body := f.want(t, 200, request{method: "POST", path: p, body: "{}"}); !strings.Contains(body, `"key":"team/a b","value":1`) {
			t.Errorf("POST %s = %s; want the flag team/a b", p, body)
		}
	}
	for _, tt := range []struct {
		name, path, body string
		code             int
		want             map[string]any // the answer's fields, errorDetails aside
	}{
		{"not found", "/ofrep/v1/evaluate/flags/elsewhere", `{"context":{}}`, 404, map[string]any{"key": "elsewhere", "errorCode": "FLAG_NOT_FOUND"}},
		{"empty key", "/ofrep/v1/evaluate/flags/", `{}`, 404, map[string]any{"key": "", "errorCode": "FLAG_NOT_FOUND"}},
		{"not JSON", "/ofrep/v1/evaluate/flags/f", `{"context":`, 400, map[string]any{"key": "f", "errorCode": "PARSE_ERROR"}},
		{"empty body", "/ofrep/v1/evaluate/flags/f", ``, 400, map[string]any{"key": "f", "errorCode": "PARSE_ERROR"}},
		{"array body", "/ofrep/v1/evaluate/flags/f", `[1]`, 400, map[string]any{"key": "f", "errorCode": "PARSE_ERROR"}},
		{"null body", "/ofrep/v1/evaluate/flags/f", `null`, 400, map[string]any{"key": "f", "errorCode": "PARSE_ERROR"}},
		{"context not object", "/ofrep/v1/evaluate/flags/f", `{"context":"u1"}`, 400, map[string]any{"key": "f", "errorCode": "INVALID_CONTEXT"}},
		{"targetingKey not string", "/ofrep/v1/evaluate/flags/f", `{"context":{"targetingKey":7}}`, 400, map[string]any{"key": "f", "errorCode": "INVALID_CONTEXT"}},
		{"no context", "/ofrep/v1/evaluate/flags/f", `{}`, 200, nil},
		{"null context", "/ofrep/v1/evaluate/flags/f", `{"context":null}`, 200, nil},
		{"bulk not JSON", "/ofrep/v1/evaluate/flags", `nope`, 400, map[string]any{"errorCode": "PARSE_ERROR"}},
		{"bulk bad context", "/ofrep/v1/evaluate/flags", `{"context":[]}`, 400, map[string]any{"errorCode": "INVALID_CONTEXT"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := f.want(t, tt.code, request{method: "POST", path: tt.path, body: tt.body})
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q; want application/json", ct)
			}
			if tt.want == nil {
				return
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("answer %q: %v", body, err)
			}
			if d, _ := got["errorDetails"].(string); d == "" {
				t.Errorf("answer %s has no errorDetails", body)
			}
			delete(got, "errorDetails")
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("answer %s; want %v and errorDetails", body, tt.want)
			}
		})
	}
	f.want(t, 405, request{method: "GET", path: "/ofrep/v1/evaluate/flags/f"})
	// A value JSON cannot hold: PARSE_ERROR, not an altered value.
	if err := f.store.Set("toggles", "bin", "\xff"); err != nil {
		t.Fatal(err)
	}
	if _, body := f.want(t, 400, request{method: "POST", path: "/ofrep/v1/evaluate/flags/bin", body: "{}"}); !strings.Contains(body, `"errorCode":"PARSE_ERROR"`) {
		t.Errorf("a non-UTF-8 value: %s; want PARSE_ERROR", body)
	}
}

// bulkAnswer is the answer of a bulk evaluation.
type bulkAnswer struct {
	Flags []struct {
		Key       string
		Value     any
		Reason    string
		ErrorCode string
		Metadata  map[string]any
	}
	Metadata     map[string]any
	EventStreams []struct {
		Type     string
		URL      string
		Endpoint struct {
			Origin     string
			RequestURI string
		}
	}
}

// TestOFREPBulk checks the bulk evaluation: every flag, sorted, each as
// the single evaluation gives it; its ETag, 304 for If-None-Match with it
// (no body), a new ETag when a flag changes and only then; the event stream
// announced.
func TestOFREPBulk(t *testing.T) {
	f := start(t, serve.Options{})
	for k, v := range map[string]string{"b": "2", "a": "true", "c": `{"x":[1]}`, "bin": "\xff"} {
		if err := f.store.Set("flags", k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.store.Set("flags", "\xfekey", "1"); err != nil {
		t.Fatal(err)
	}
	if err := f.store.Set("other", "z", "1"); err != nil {
		t.Fatal(err)
	}
	bulk := func(h map[string]string) request {
		return request{method: "POST", path: "/ofrep/v1/evaluate/flags", body: `{"context":{"targetingKey":"u"}}`, header: h}
	}
	resp, body := f.want(t, 200, bulk(nil))
	var got bulkAnswer
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, fl := range got.Flags {
		keys = append(keys, fl.Key)
	}
	if !reflect.DeepEqual(keys, []string{"a", "b", "bin", "c"}) {
		t.Errorf("bulk flags %v; want a b bin c (sorted; the non-UTF-8 key left out)", keys)
	}
	if got.Flags[0].Value != true || got.Flags[0].Reason != "STATIC" || got.Flags[2].ErrorCode != "PARSE_ERROR" ||
		!reflect.DeepEqual(got.Flags[3].Value, map[string]any{"x": []any{1.0}}) {
		t.Errorf("bulk answer %s", body)
	}
	if !reflect.DeepEqual(got.Metadata, map[string]any{"namespace": "flags"}) {
		t.Errorf("bulk metadata %v; want namespace flags", got.Metadata)
	}
	if len(got.EventStreams) != 1 || got.EventStreams[0].Type != "sse" || got.EventStreams[0].URL != "" ||
		got.EventStreams[0].Endpoint.Origin != "" || got.EventStreams[0].Endpoint.RequestURI != "/ofrep/v1/events" {
		t.Errorf("bulk eventStreams %+v; want one sse endpoint with requestUri /ofrep/v1/events", got.EventStreams)
	}
	etag := resp.Header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) || len(etag) < 20 {
		t.Fatalf("bulk ETag %q; want a strong tag", etag)
	}
	resp, body = f.want(t, 304, bulk(map[string]string{"If-None-Match": etag}))
	if body != "" || resp.Header.Get("ETag") != etag {
		t.Errorf("304 with body %q, ETag %q; want none, %q", body, resp.Header.Get("ETag"), etag)
	}
	f.want(t, 200, bulk(map[string]string{"If-None-Match": `"other"`}))
	// Another namespace's change, or a flag set to its own value, keeps
	// the ETag; a flag's change, a new flag, a deleted one change it.
	if err := f.store.Set("other", "z", "2"); err != nil {
		t.Fatal(err)
	}
	if err := f.store.Set("flags", "a", "true"); err != nil {
		t.Fatal(err)
	}
	f.want(t, 304, bulk(map[string]string{"If-None-Match": etag}))
	// The evaluation is cached: a change of a flag that was there, or its
	// deletion, is in the next answer; a new flag written to the Store
	// other than through the server, once the Store's Watch reports it
	// (TestBulkCache: through the server, in the next answer).
	for _, change := range []struct {
		do  func() error
		new bool
	}{
		{func() error { return f.store.Set("flags", "a", "false") }, false},
		{func() error { return f.store.Set("flags", "d", "") }, true},
		{func() error { return f.store.Delete("flags", "d") }, false},
	} {
		if err := change.do(); err != nil {
			t.Fatal(err)
		}
		resp, _ := f.do(t, bulk(map[string]string{"If-None-Match": etag}))
		for deadline := time.Now().Add(wait); change.new && resp.StatusCode == 304 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
			resp, _ = f.do(t, bulk(map[string]string{"If-None-Match": etag}))
		}
		if resp.StatusCode != 200 || resp.Header.Get("ETag") == etag {
			t.Errorf("after a change: %d, ETag %s; want 200 and another ETag than %s", resp.StatusCode, resp.Header.Get("ETag"), etag)
		}
		etag = resp.Header.Get("ETag")
		f.want(t, 304, bulk(map[string]string{"If-None-Match": etag}))
	}
}

// TestOFREPTicket checks the OFREP event stream's ticket: with tokens,
// the bulk evaluation announces a URL with a ticket that opens the event
// stream (and only it) without a header, as a browser's EventSource does.
func TestOFREPTicket(t *testing.T) {
	f := start(t, serve.Options{Tokens: testTokens(t)})
	_, body := f.want(t, 200, request{method: "POST", path: "/ofrep/v1/evaluate/flags", body: "{}",
		header: map[string]string{"X-API-Key": readSecret}})
	var got bulkAnswer
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	uri := got.EventStreams[0].Endpoint.RequestURI
	u, err := url.Parse(uri)
	if err != nil || u.Path != "/ofrep/v1/events" || u.Query().Get("ticket") == "" {
		t.Fatalf("announced %q; want /ofrep/v1/events?ticket=...", uri)
	}
	ticket := u.Query().Get("ticket")
	if strings.Contains(uri, readSecret) {
		t.Fatalf("announced %q holds the secret", uri)
	}
	resp, err := streamGet(t, f, uri, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s = %d; want 200", uri, resp.StatusCode)
	}
	// The ticket admits to nothing else, and a wrong one to nothing.
	f.want(t, 401, request{method: "GET", path: "/v1/namespaces/flags/events?ticket=" + url.QueryEscape(ticket)})
	f.want(t, 401, request{method: "GET", path: "/v1/namespaces?ticket=" + url.QueryEscape(ticket)})
	f.want(t, 401, request{method: "GET", path: "/ofrep/v1/events", header: map[string]string{"X-API-Key": ticket}})
	f.want(t, 401, request{method: "GET", path: "/ofrep/v1/events?ticket=" + url.QueryEscape(readSecret)})
	f.want(t, 401, request{method: "GET", path: "/ofrep/v1/events?ticket=x" + url.QueryEscape(ticket)})
	// Once its token is gone, its ticket is refused too.
	toks, err := serve.ParseTokens(strings.NewReader(hashLine("writer", "write", writeSecret)), "new")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.srv.SetTokens(toks); err != nil {
		t.Fatal(err)
	}
	f.want(t, 401, request{method: "GET", path: uri})
}
