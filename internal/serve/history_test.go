package serve_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/internal/serve"
)

// change is a change as the history endpoint answers it.
type change struct {
	Seq           int64  `json:"seq"`
	Time          string `json:"time"`
	Namespace     string `json:"namespace"`
	Key           string `json:"key"`
	Op            string `json:"op"`
	Existed       bool   `json:"existed"`
	Before        string `json:"before"`
	BeforeExpires string `json:"before_expires"`
	After         string `json:"after"`
	Expires       string `json:"expires"`
	Actor         string `json:"actor"`
}

// history asks f for the history at path?query and returns its changes.
func (f *fixture) history(t *testing.T, ns, query string, h map[string]string) []change {
	t.Helper()
	_, body := f.want(t, 200, request{method: "GET", path: "/v1/namespaces/" + escape(ns) + "/history?" + query, header: h})
	var got struct{ Changes []change }
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("history answer %q: %v", body, err)
	}
	return got.Changes
}

// TestHistoryEndpoint checks GET .../history: a namespace's or a key's
// changes, newest first, with who (the token's name, the session's
// token's, or the Store's actor), when, the op, before and after;
// limit and before page through them; names of any bytes round-trip; a
// namespace without history is 404; bad parameters 400; a read token
// reads it.
func TestHistoryEndpoint(t *testing.T) {
	s, err := opstate.Open(filepath.Join(t.TempDir(), "h.db"), opstate.Options{SweepInterval: -1, Actor: "ops-bot"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f := serveStore(t, s, serve.Options{UI: true, Tokens: testTokens(t)})
	ns, key := "team/a %.. <b>", `<img src=x onerror=alert(1)>`
	if err := s.SetHistory(ns, 100); err != nil {
		t.Fatal(err)
	}
	w := map[string]string{"Authorization": "Bearer " + writeSecret}
	r := map[string]string{"X-API-Key": readSecret}
	f.want(t, 204, request{method: "PUT", path: keyPath(ns, key), body: "one", header: w})
	f.want(t, 204, request{method: "PUT", path: keyPath(ns, key) + "?ttl=1h", body: "two", header: w})
	sess := f.login(t, writeSecret)
	f.want(t, 204, request{method: "DELETE", path: keyPath(ns, key), header: sess.h()})
	if err := s.Set(ns, "other", "x"); err != nil {
		t.Fatal(err)
	}

	all := f.history(t, ns, "", r)
	if len(all) != 4 {
		t.Fatalf("history = %+v; want 4 changes", all)
	}
	for i, want := range []change{
		{Key: "other", Op: "set", After: "x", Actor: "ops-bot"},
		{Key: key, Op: "delete", Existed: true, Before: "two", Actor: "writer"},
		{Key: key, Op: "set", Existed: true, Before: "one", After: "two", Actor: "writer"},
		{Key: key, Op: "set", After: "one", Actor: "writer"},
	} {
		got := all[i]
		if got.Key != want.Key || got.Op != want.Op || got.Existed != want.Existed || got.Before != want.Before ||
			got.After != want.After || got.Actor != want.Actor || got.Namespace != ns {
			t.Errorf("change %d = %+v; want %+v", i, got, want)
		}
		if i > 0 && got.Seq >= all[i-1].Seq {
			t.Errorf("change %d has seq %d, not below %d: not newest first", i, got.Seq, all[i-1].Seq)
		}
		if _, err := time.Parse(time.RFC3339, got.Time); err != nil {
			t.Errorf("change %d time %q: %v", i, got.Time, err)
		}
	}
	if all[2].Expires == "" || all[1].BeforeExpires == "" || all[3].Expires != "" {
		t.Errorf("expiries: set with ttl %q, delete's before %q, set without ttl %q; want, want, none",
			all[2].Expires, all[1].BeforeExpires, all[3].Expires)
	}
	if ks := f.history(t, ns, "key="+url.QueryEscape(key), r); len(ks) != 3 || ks[0].Seq != all[1].Seq {
		t.Errorf("history of the key = %+v; want its 3 changes", ks)
	}
	page := f.history(t, ns, "limit=2", r)
	next := f.history(t, ns, fmt.Sprintf("limit=2&before=%d", page[1].Seq), r)
	if len(page) != 2 || len(next) != 2 || page[0].Seq != all[0].Seq || next[0].Seq != all[2].Seq || next[1].Seq != all[3].Seq {
		t.Errorf("pages = %+v, %+v; want the 4 changes in order", page, next)
	}
	if rest := f.history(t, ns, fmt.Sprintf("before=%d", all[3].Seq), r); len(rest) != 0 {
		t.Errorf("before the first change = %+v; want none", rest)
	}

	f.want(t, 404, request{method: "GET", path: "/v1/namespaces/nohist/history", header: r})
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "before=0", "before=-1", "key=", "key=a&key=b", "x=1"} {
		f.want(t, 400, request{method: "GET", path: "/v1/namespaces/" + escape(ns) + "/history?" + q, header: r})
	}
	f.want(t, 405, request{method: "POST", path: "/v1/namespaces/" + escape(ns) + "/history", header: w})
	f.want(t, 401, request{method: "GET", path: "/v1/namespaces/" + escape(ns) + "/history"})
}

// TestRevertEndpoint checks POST .../keys/{key}/revert?seq=N: the key
// gets back the state after change N, recorded as the token's change;
// with If-Match (the value the client saw) it is conditional on that
// value, 412 and nothing changed when the key changed since; with
// If-None-Match: * on the key's absence; without either, the Store's
// Revert. A change that is not the key's is 404, a value expired since
// 409, a read token 403, a namespace without history 404.
func TestRevertEndpoint(t *testing.T) {
	f := start(t, serve.Options{UI: true, Tokens: testTokens(t)})
	ns, key := "flags", "a/b %2F ."
	if err := f.store.SetHistory(ns, 100); err != nil {
		t.Fatal(err)
	}
	w := map[string]string{"Authorization": "Bearer " + writeSecret}
	with := func(kv ...string) map[string]string {
		m := map[string]string{"Authorization": "Bearer " + writeSecret}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, v := range []string{"v1", "v2", "v3"} {
		f.want(t, 204, request{method: "PUT", path: keyPath(ns, key), body: v, header: w})
	}
	cs := f.history(t, ns, "key="+url.QueryEscape(key), w)
	s1, s2, s3 := cs[2].Seq, cs[1].Seq, cs[0].Seq
	revert := func(seq int64, h map[string]string) request {
		return request{method: "POST", path: fmt.Sprintf("%s/revert?seq=%d", keyPath(ns, key), seq), header: h}
	}
	value := func() string {
		v, ok, err := f.store.Lookup(ns, key)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return "(absent)"
		}
		return v
	}

	f.want(t, 412, revert(s1, with("If-Match", etagOf("v2")))) // the client saw v2; it is v3 now
	f.want(t, 412, revert(s1, with("If-None-Match", "*")))     // the client saw none
	if v := value(); v != "v3" {
		t.Fatalf("after refused reverts, value = %q; want v3", v)
	}
	f.want(t, 204, revert(s1, with("If-Match", etagOf("v3"))))
	if v := value(); v != "v1" {
		t.Errorf("after revert to change %d, value = %q; want v1", s1, v)
	}
	if c := f.history(t, ns, "limit=1", w)[0]; c.Op != "set" || c.Before != "v3" || c.After != "v1" || c.Actor != "writer" {
		t.Errorf("the revert's change = %+v; want set v3 -> v1 by writer", c)
	}
	f.want(t, 204, revert(s3, w)) // the Store's Revert: conditional on the latest recorded change
	if v := value(); v != "v3" {
		t.Errorf("after revert to change %d, value = %q; want v3", s3, v)
	}

	// Back to absent, and from absent.
	f.want(t, 204, request{method: "DELETE", path: keyPath(ns, key), header: w})
	del := f.history(t, ns, "limit=1", w)[0].Seq
	f.want(t, 204, revert(s2, with("If-None-Match", "*")))
	if v := value(); v != "v2" {
		t.Errorf("after revert from absent to change %d, value = %q; want v2", s2, v)
	}
	f.want(t, 204, revert(del, with("If-Match", etagOf("v2"))))
	if v := value(); v != "(absent)" {
		t.Errorf("after revert to the delete %d, value = %q; want absent", del, v)
	}

	// A value that has expired since cannot come back.
	if err := f.store.SetWithTTL(ns, key, "brief", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	brief := f.history(t, ns, "limit=1", w)[0].Seq
	time.Sleep(20 * time.Millisecond)
	f.want(t, 204, request{method: "PUT", path: keyPath(ns, key), body: "now", header: w})
	f.want(t, 409, revert(brief, with("If-Match", etagOf("now"))))
	if v := value(); v != "now" {
		t.Errorf("after reverting to an expired value, value = %q; want now", v)
	}

	if err := f.store.Set(ns, "other", "x"); err != nil {
		t.Fatal(err)
	}
	other := f.history(t, ns, "limit=1", w)[0].Seq
	f.want(t, 404, revert(other, w)) // not a change of key
	f.want(t, 404, revert(other, with("If-Match", etagOf("now"))))
	f.want(t, 404, revert(1<<40, w))
	f.want(t, 403, revert(s1, map[string]string{"X-API-Key": readSecret}))
	for _, q := range []string{"", "?seq=0", "?seq=x", "?seq=1&seq=2", "?seq=1&x=1"} {
		f.want(t, 400, request{method: "POST", path: keyPath(ns, key) + "/revert" + q, header: w})
	}
	f.want(t, 400, revert(s1, with("If-Match", etagOf("now"), "If-None-Match", "*")))
	f.want(t, 404, request{method: "POST", path: keyPath("nohist", "k") + "/revert?seq=1", header: w})
	f.want(t, 405, request{method: "GET", path: keyPath(ns, key) + "/revert?seq=1", header: w})
	if v := value(); v != "now" {
		t.Errorf("after the refused reverts, value = %q; want now", v)
	}
	// The page's session reverts too, with its CSRF token, and not without it.
	sess := f.login(t, writeSecret)
	f.want(t, 403, revert(s1, sess.h("X-CSRF-Token", "")))
	f.want(t, 204, revert(s1, sess.h("If-Match", etagOf("now"))))
	if v := value(); v != "v1" {
		t.Errorf("after the session's revert, value = %q; want v1", v)
	}
}

// TestWriteActor checks who the server's writes are recorded as: the
// token's name, for a header or a session; without tokens, the Store's
// Options.Actor.
func TestWriteActor(t *testing.T) {
	s, err := opstate.Open(filepath.Join(t.TempDir(), "a.db"), opstate.Options{SweepInterval: -1, Actor: "ops-bot"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.SetHistory("ns", 10); err != nil {
		t.Fatal(err)
	}
	open := serveStore(t, s, serve.Options{})
	open.want(t, 204, request{method: "PUT", path: keyPath("ns", "k"), body: "1"})
	if c := open.history(t, "ns", "limit=1", nil)[0]; c.Actor != "ops-bot" {
		t.Errorf("without tokens, actor = %q; want ops-bot", c.Actor)
	}
	f := serveStore(t, s, serve.Options{UI: true, Tokens: testTokens(t)})
	f.want(t, 204, request{method: "PUT", path: keyPath("ns", "k"), body: "2", header: map[string]string{"X-API-Key": writeSecret}})
	if c := f.history(t, "ns", "limit=1", map[string]string{"X-API-Key": readSecret})[0]; c.Actor != "writer" {
		t.Errorf("with a token, actor = %q; want writer", c.Actor)
	}
	sess := f.login(t, writeSecret)
	f.want(t, 204, request{method: "DELETE", path: "/v1/namespaces/ns", header: sess.h()})
	if c := f.history(t, "ns", "limit=1", sess.h())[0]; c.Actor != "writer" || c.Op != "delete" {
		t.Errorf("a session's namespace delete = %+v; want delete by writer", c)
	}
}

// TestHostileNames checks names that look like the page's or history's
// paths, or try to leave their segment: each is a name, or refused,
// never another endpoint.
func TestHostileNames(t *testing.T) {
	f := start(t, serve.Options{UI: true, Tokens: testTokens(t)})
	w := map[string]string{"Authorization": "Bearer " + writeSecret}
	for _, nk := range [][2]string{{"ui", "login"}, {"history", "revert"}, {"events", "history"}, {"x", "a/revert"},
		{"..", "."}, {"%2E%2E", "%2F"}, {"ns", "<img src=x onerror=alert(1)>"}, {"ns", "k?seq=1"}} {
		ns, key := nk[0], nk[1]
		if err := f.store.SetHistory(ns, 10); err != nil {
			t.Fatal(err)
		}
		f.want(t, 204, request{method: "PUT", path: keyPath(ns, key), body: "v:" + key, header: w})
		if _, body := f.want(t, 200, request{method: "GET", path: keyPath(ns, key), header: w}); body != "v:"+key {
			t.Errorf("GET %q/%q = %q", ns, key, body)
		}
		cs := f.history(t, ns, "key="+url.QueryEscape(key), w)
		if len(cs) != 1 || cs[0].Namespace != ns || cs[0].Key != key {
			t.Errorf("history of %q/%q = %+v", ns, key, cs)
		}
	}
	for _, p := range []string{"/%2F", "/ui/app%2Ejs", "/ui/login/", "/ui/%2E%2E/app.js", "/v1/namespaces/x/keys/a/revert/x",
		"/v1/namespaces/x/history/x", "/v1/namespaces/x/keys/a/history"} {
		if resp, _ := f.do(t, request{method: "GET", path: p, header: w}); resp.StatusCode != 404 {
			t.Errorf("GET %s = %d; want 404", p, resp.StatusCode)
		}
	}
	for _, p := range []string{"/ui/../", "/v1/namespaces/x/keys/./revert", "/v1/namespaces/../history"} {
		if got := rawRequest(t, f.addr, "GET "+p+" HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "+writeSecret+
			"\r\nConnection: close\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 400") {
			t.Errorf("GET %s = %.40q; want 400", p, got)
		}
	}
}
