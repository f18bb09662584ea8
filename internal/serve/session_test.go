package serve_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/d8da9184/opstate/internal/serve"
)

// noRedirect is a client that shows a redirect rather than follow it.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// postLogin posts the login form with secret and extra headers, and
// returns the answer and its body.
func (f *fixture) postLogin(t *testing.T, secret string, header map[string]string) (*http.Response, string) {
	t.Helper()
	r, err := http.NewRequest("POST", f.url+"/ui/login", strings.NewReader(url.Values{"token": {secret}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		r.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var csrfMeta = regexp.MustCompile(`<meta name="opstate-csrf" content="([^"]*)">`)

// session is a browser's login: its cookie and the CSRF token its page
// holds.
type session struct {
	cookie, csrf string
}

// login logs in with secret and returns the session.
func (f *fixture) login(t *testing.T, secret string) session {
	t.Helper()
	resp, body := f.postLogin(t, secret, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login = %d, Location %q, %q; want 303 to /", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	var c *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == "opstate_session" {
			c = k
		}
	}
	if c == nil || c.Value == "" {
		t.Fatal("login set no session cookie")
	}
	s := session{cookie: "opstate_session=" + c.Value}
	_, page := f.want(t, 200, request{method: "GET", path: "/", header: map[string]string{"Cookie": s.cookie}})
	m := csrfMeta.FindStringSubmatch(page)
	if m == nil || m[1] == "" {
		t.Fatalf("the page of a session holds no CSRF token:\n%s", page)
	}
	s.csrf = m[1]
	return s
}

// h returns the headers of a request of the session's page that changes
// state: the cookie, the CSRF token and the same-origin fetch metadata a
// browser adds; extra pairs are added or replace them ("" deletes).
func (s session) h(kv ...string) map[string]string {
	m := map[string]string{"Cookie": s.cookie, "X-CSRF-Token": s.csrf, "Sec-Fetch-Site": "same-origin"}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(m, kv[i])
		} else {
			m[kv[i]] = kv[i+1]
		}
	}
	return m
}

// TestLogin checks the login form and the session it starts: a wrong
// token is 401 and the form again, saying why; a right one a session
// cookie (HttpOnly, SameSite=Strict, Path=/, not Secure over plain
// HTTP) and a redirect to the page, which then is the application with
// the token's name and scope; the cookie admits to the API; logout needs
// the CSRF token, ends the session and clears the cookie.
func TestLogin(t *testing.T) {
	f := start(t, serve.Options{UI: true, Tokens: testTokens(t)})
	_, page := f.want(t, 200, request{method: "GET", path: "/"})
	if !strings.Contains(page, `data-test="login-form"`) || strings.Contains(page, "app.js") {
		t.Errorf("GET / without a session is not the login form:\n%s", page)
	}
	for _, bad := range []string{"", "wrong", readSecret + "x", strings.Repeat("x", 5000)} {
		resp, body := f.postLogin(t, bad, nil)
		if resp.StatusCode != 401 && resp.StatusCode != 400 {
			t.Errorf("login with %.10q = %d; want 401", bad, resp.StatusCode)
		}
		if len(resp.Cookies()) != 0 {
			t.Errorf("a refused login set a cookie: %v", resp.Cookies())
		}
		if resp.StatusCode == 401 && !strings.Contains(body, `data-test="login-error"`) {
			t.Errorf("a refused login does not say so:\n%s", body)
		}
	}
	resp, _ := f.postLogin(t, writeSecret, nil)
	var c *http.Cookie
	for _, k := range resp.Cookies() {
		c = k
	}
	if resp.StatusCode != 303 || c == nil {
		t.Fatalf("login = %d, cookies %v; want 303 and a cookie", resp.StatusCode, resp.Cookies())
	}
	if c.Name != "opstate_session" || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure ||
		c.Domain != "" || c.MaxAge != 0 || len(c.Value) < 40 {
		t.Errorf("cookie = %+v; want opstate_session, HttpOnly, SameSite=Strict, Path=/, not Secure, no Domain or Max-Age, a long random value", c)
	}
	s := session{cookie: c.Name + "=" + c.Value}
	_, page = f.want(t, 200, request{method: "GET", path: "/", header: map[string]string{"Cookie": s.cookie}})
	if !strings.Contains(page, "writer (write)") || !strings.Contains(page, `src="/ui/app.js"`) {
		t.Errorf("the page of a session does not name its token and scope:\n%s", page)
	}
	checkNoInline(t, page)
	s.csrf = csrfMeta.FindStringSubmatch(page)[1]
	f.want(t, 200, request{method: "GET", path: "/v1/namespaces", header: map[string]string{"Cookie": s.cookie}})

	f.want(t, 403, request{method: "POST", path: "/ui/logout", header: s.h("X-CSRF-Token", "")})
	f.want(t, 403, request{method: "POST", path: "/ui/logout", header: s.h("X-CSRF-Token", "wrong")})
	f.want(t, 200, request{method: "GET", path: "/v1/namespaces", header: map[string]string{"Cookie": s.cookie}})
	resp, _ = f.want(t, 204, request{method: "POST", path: "/ui/logout", header: s.h()})
	if cs := resp.Cookies(); len(cs) != 1 || cs[0].Value != "" || cs[0].MaxAge >= 0 {
		t.Errorf("logout cookies = %v; want the session cookie cleared", cs)
	}
	f.want(t, 401, request{method: "GET", path: "/v1/namespaces", header: map[string]string{"Cookie": s.cookie}})
	_, page = f.want(t, 200, request{method: "GET", path: "/", header: map[string]string{"Cookie": s.cookie}})
	if !strings.Contains(page, `data-test="login-form"`) {
		t.Error("after logout, / is not the login form")
	}
}

// TestLoginSecure checks that the session cookie is Secure when the
// login came over TLS, to the server or to a proxy that says so.
func TestLoginSecure(t *testing.T) {
	f := start(t, serve.Options{UI: true, Tokens: testTokens(t)})
	for _, tt := range []struct {
		name   string
		tls    bool
		proto  string
		secure bool
	}{
		{"TLS", true, "", true},
		{"TLS proxy", false, "https", true},
		{"plain proxy", false, "http", false},
		{"plain", false, "", false},
	} {
		r := httptest.NewRequest("POST", "http://flags.example/ui/login", strings.NewReader("token="+url.QueryEscape(readSecret)))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if tt.tls {
			r.TLS = &tls.ConnectionState{}
		}
		if tt.proto != "" {
			r.Header.Set("X-Forwarded-Proto", tt.proto)
		}
		w := httptest.NewRecorder()
		f.srv.ServeHTTP(w, r)
		resp := w.Result()
		if resp.StatusCode != 303 || len(resp.Cookies()) != 1 || resp.Cookies()[0].Secure != tt.secure {
			t.Errorf("%s: login = %d, cookies %v; want 303 and a cookie with Secure %v", tt.name, resp.StatusCode, resp.Cookies(), tt.secure)
		}
	}
}

// TestSessionCSRF checks the protection of a session's state-changing
// requests: without the CSRF header, with a wrong one, or sent by
// another site's page (Origin or Sec-Fetch-Site) they are refused with
// 403 and change nothing; a read session cannot write even with its
// CSRF token; the same requests of the page itself succeed. A
// cross-site POST is refused whatever it carries, the login form's
// included.
func TestSessionCSRF(t *testing.T) {
	f := start(t, serve.Options{UI: true, Tokens: testTokens(t)})
	w := f.login(t, writeSecret)
	r := f.login(t, readSecret)
	put := func(h map[string]string) request {
		return request{method: "PUT", path: keyPath("flags", "dark_mode"), body: "true", header: h}
	}
	for _, tt := range []struct {
		name string
		req  request
		code int
	}{
		{"no CSRF header", put(w.h("X-CSRF-Token", "")), 403},
		{"wrong CSRF token", put(w.h("X-CSRF-Token", strings.Repeat("x", len(w.csrf)))), 403},
		{"another session's CSRF token", put(w.h("X-CSRF-Token", r.csrf)), 403},
		{"cross-site Origin", put(w.h("Sec-Fetch-Site", "", "Origin", "https://evil.example")), 403},
		{"cross-site Sec-Fetch-Site", put(w.h("Sec-Fetch-Site", "cross-site")), 403},
		{"same-site Sec-Fetch-Site", put(w.h("Sec-Fetch-Site", "same-site")), 403},
		{"cross-site delete", request{method: "DELETE", path: keyPath("flags", "dark_mode"), header: w.h("Sec-Fetch-Site", "cross-site")}, 403},
		{"cross-site revert", request{method: "POST", path: keyPath("flags", "dark_mode") + "/revert?seq=1", header: w.h("Sec-Fetch-Site", "cross-site")}, 403},
		{"cross-site revert, no cookie", request{method: "POST", path: keyPath("flags", "dark_mode") + "/revert?seq=1",
			header: map[string]string{"Origin": "https://evil.example"}}, 403},
		{"cross-site logout", request{method: "POST", path: "/ui/logout", header: w.h("Sec-Fetch-Site", "cross-site")}, 403},
		{"read session writing", put(r.h()), 403},
		{"read session deleting", request{method: "DELETE", path: "/v1/namespaces/flags", header: r.h()}, 403},
		{"no cookie", put(w.h("Cookie", "")), 401},
		{"a made-up cookie", put(w.h("Cookie", "opstate_session=made-up")), 401},
		{"same origin, by Origin", put(w.h("Sec-Fetch-Site", "", "Origin", f.url)), 204},
		{"same origin, by Sec-Fetch-Site", put(w.h()), 204},
		{"a token in a header from another origin", put(map[string]string{"Authorization": "Bearer " + writeSecret,
			"Origin": "https://evil.example"}), 204}, // not a browser's ambient credential: no CSRF
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := f.store.Set("flags", "dark_mode", "false"); err != nil {
				t.Fatal(err)
			}
			f.want(t, tt.code, tt.req)
			v, _ := f.store.Get("flags", "dark_mode")
			if changed := tt.req.method == "PUT" && v != "false" || tt.req.method == "DELETE" && v != "false"; changed != (tt.code == 204) {
				t.Errorf("after %d, dark_mode = %q", tt.code, v)
			}
		})
	}
	for _, h := range []map[string]string{{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}} {
		resp, _ := f.postLogin(t, writeSecret, h)
		if resp.StatusCode != 403 || len(resp.Cookies()) != 0 {
			t.Errorf("cross-site login %v = %d, cookies %v; want 403, none", h, resp.StatusCode, resp.Cookies())
		}
	}
	f.want(t, 200, request{method: "GET", path: keyPath("flags", "dark_mode"), header: r.h()})
}

// TestOpenCrossSite checks a server without tokens: the page needs no
// login, a cross-site write is refused (403) while a same-origin one and
// a request with no browser header (curl) pass.
func TestOpenCrossSite(t *testing.T) {
	f := start(t, serve.Options{UI: true})
	_, page := f.want(t, 200, request{method: "GET", path: "/"})
	if !strings.Contains(page, `data-scope="open"`) || strings.Contains(page, "login-form") {
		t.Errorf("the open page:\n%s", page)
	}
	put := func(h map[string]string) request {
		return request{method: "PUT", path: keyPath("flags", "x"), body: "1", header: h}
	}
	f.want(t, 403, put(map[string]string{"Sec-Fetch-Site": "cross-site"}))
	f.want(t, 403, put(map[string]string{"Origin": "http://evil.example"}))
	f.want(t, 403, request{method: "POST", path: keyPath("flags", "x") + "/revert?seq=1", header: map[string]string{"Origin": "null"}})
	f.want(t, 204, put(map[string]string{"Sec-Fetch-Site": "same-origin"}))
	f.want(t, 204, put(nil))
	// A page of a CORS origin writes as before.
	f = start(t, serve.Options{UI: true, CORSOrigins: []string{"https://app.example"}})
	f.want(t, 204, put(map[string]string{"Origin": "https://app.example", "Sec-Fetch-Site": "cross-site"}))
}

// TestSessionEnds checks that a session ends when its token leaves the
// tokens (SetTokens, as SIGHUP does), follows its token's scope, and
// ends after sessionIdle without a request.
func TestSessionEnds(t *testing.T) {
	f := start(t, serve.Options{UI: true, Tokens: testTokens(t)})
	var offset atomic.Int64
	f.srv.SetNow(func() time.Time { return time.Now().Add(time.Duration(offset.Load())) })
	w := f.login(t, writeSecret)
	r := f.login(t, readSecret)
	put := request{method: "PUT", path: keyPath("flags", "x"), body: "1", header: w.h()}
	f.want(t, 204, put)

	// The writer becomes a reader, and the reader leaves the file.
	toks, err := serve.ParseTokens(strings.NewReader(hashLine("writer", "read", writeSecret)+"\n"), "new")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.srv.SetTokens(toks); err != nil {
		t.Fatal(err)
	}
	f.want(t, 403, put)
	f.want(t, 200, request{method: "GET", path: "/v1/namespaces", header: w.h()})
	f.want(t, 401, request{method: "GET", path: "/v1/namespaces", header: r.h()})
	if n := f.srv.Sessions(); n != 1 {
		t.Errorf("sessions after SetTokens = %d; want 1 (the reader's ended)", n)
	}
	offset.Store(int64(11 * time.Hour))
	f.want(t, 200, request{method: "GET", path: "/v1/namespaces", header: w.h()})
	offset.Store(int64(22 * time.Hour)) // 11 h after its last request
	f.want(t, 200, request{method: "GET", path: "/v1/namespaces", header: w.h()})
	offset.Store(int64(35 * time.Hour))
	f.want(t, 401, request{method: "GET", path: "/v1/namespaces", header: w.h()})
}

// TestSessionBound checks that the sessions are bounded: past
// MaxSessions a login ends the session least recently used, and no
// other.
func TestSessionBound(t *testing.T) {
	f := start(t, serve.Options{UI: true, Tokens: testTokens(t), MaxSessions: 3})
	var offset atomic.Int64
	f.srv.SetNow(func() time.Time { return time.Now().Add(time.Duration(offset.Load())) })
	var ss []session
	for i := range 3 {
		offset.Store(int64(i) * int64(time.Minute))
		ss = append(ss, f.login(t, readSecret))
	}
	offset.Store(int64(10 * time.Minute))
	get := func(s session) request {
		return request{method: "GET", path: "/v1/namespaces", header: map[string]string{"Cookie": s.cookie}}
	}
	f.want(t, 200, get(ss[0])) // ss[1] is now the least recently used
	offset.Store(int64(11 * time.Minute))
	ss = append(ss, f.login(t, readSecret))
	if n := f.srv.Sessions(); n != 3 {
		t.Errorf("sessions = %d; want 3", n)
	}
	f.want(t, 401, get(ss[1]))
	for _, i := range []int{0, 2, 3} {
		f.want(t, 200, get(ss[i]))
	}
}
