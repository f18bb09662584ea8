package admintest

import (
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// attackPages are the pages of another site that the test serves, each
// of which tries to change the state of the opstate server at {{.Server}}
// with the browser's session: a form that logs the browser in with
// another token (the read token {{.Secret}}), a form that logs it out, and
// requests of the page's script, whose outcome it writes to its title
// once they have settled: a PUT with the session's cookie, which needs
// CORS's permission, and POSTs that do not (a logout, and a revert of
// dark_mode to its first change, true).
var attackPages = template.Must(template.New("").Parse(`
{{define "login"}}<!doctype html><form method="post" action="{{.Server}}/ui/login">
<input name="token" value="{{.Secret}}"></form>
<script>document.forms[0].submit()</script>{{end}}
{{define "logout"}}<!doctype html><form method="post" action="{{.Server}}/ui/logout"></form>
<script>document.forms[0].submit()</script>{{end}}
{{define "fetch"}}<!doctype html><script>
const put = fetch({{.Server}} + "/v1/namespaces/flags/keys/dark_mode", {method: "PUT", body: "true", credentials: "include"})
	.then(r => "answered " + r.status, e => "failed");
const logout = fetch({{.Server}} + "/ui/logout", {method: "POST", mode: "no-cors", credentials: "include"})
	.then(r => "sent", e => "failed");
const revert = fetch({{.Server}} + "/v1/namespaces/flags/keys/dark_mode/revert?seq=1", {method: "POST", mode: "no-cors", credentials: "include"})
	.then(r => "sent", e => "failed");
Promise.all([put, logout, revert]).then(([a, b, c]) => { document.title = "done put " + a + ", logout " + b + ", revert " + c; });
</script>{{end}}
`))

// attackOrigins starts a server of attackPages against s, and returns
// two origins of it: 127.0.0.1 on its port, the same site as s (the
// same host, another port) but another origin, and localhost, another
// site.
func attackOrigins(t *testing.T, s *server) []string {
	t.Helper()
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		err := attackPages.ExecuteTemplate(w, strings.TrimPrefix(r.URL.Path, "/"), struct{ Server, Secret string }{s.url, s.read})
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
		}
	}))
	t.Cleanup(attacker.Close)
	_, port, err := net.SplitHostPort(attacker.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return []string{"http://127.0.0.1:" + port, "http://localhost:" + port}
}

// TestCrossSite logs in with the write token and has pages of other
// origins try to change state with the browser's session: from
// 127.0.0.1 on another port (same site: the SameSite=Strict cookie goes
// with the requests, so the server's own checks must refuse them) and
// from localhost (another site). A login form posted from them is
// refused (403) and the session stays the write token's; a logout form
// is refused and the session stays; a PUT from their script gets no
// answer (CORS), and POSTs of a logout and a revert change nothing: the
// session stays, and the CLI reads the value unchanged. Requests outside the browser with the session's cookie and
// CSRF token: a PUT saying it comes from another origin is refused
// (403), one without the CSRF token too, and the same PUT with both from
// no other origin is taken (204), which shows the cookie and token were
// good.
func TestCrossSite(t *testing.T) {
	e := setup(t)
	s := e.serve(t)
	keepHistory(t, s.db, "flags", 100)
	e.opstate(t, s.db, "set", "flags", "dark_mode", "true") // change 1, which a revert would restore
	e.opstate(t, s.db, "set", "flags", "dark_mode", "false")
	b := e.newBrowser(t, 1280, 900)
	b.login(s, s.write)
	csrf := eval[string](b, `document.querySelector('meta[name="opstate-csrf"]').content`)
	cookie := b.sessionCookie(s.url)

	for _, origin := range attackOrigins(t, s) {
		for _, form := range []string{"login", "logout"} {
			b.do("the "+form+" form of "+origin, chromedp.Navigate(origin+"/"+form))
			b.waitFor("the server's answer to the "+form+" form", `location.origin === `+js(s.url))
			if body := eval[string](b, `document.body.innerText`); !strings.Contains(body, "cross-site request") {
				t.Errorf("the %s form posted from %s was answered %q; want it refused as cross-site", form, origin, body)
			}
			b.shoot("cross-site-" + form)
			b.do("the page", chromedp.Navigate(s.url+"/"))
			b.waitFor("the application, still logged in", `document.body.dataset.ready === "1"`)
			if got := b.text(q("whoami")); got != "operator (write)" {
				t.Errorf("after the %s form of %s, whoami = %q; want operator (write)", form, origin, got)
			}
		}
		b.do("the script of "+origin, chromedp.Navigate(origin+"/fetch"))
		b.waitFor("the script's requests settled", `document.title.startsWith("done")`)
		if got, want := eval[string](b, `document.title`), "done put failed, logout sent, revert sent"; got != want {
			t.Errorf("the script of %s: %q; want %q", origin, got, want)
		}
		if got := e.opstate(t, s.db, "get", "flags", "dark_mode"); got != "false\n" {
			t.Errorf("opstate get flags dark_mode = %q after the script of %s; want false", got, origin)
		}
		b.do("the page", chromedp.Navigate(s.url+"/"))
		b.waitFor("the application, still logged in", `document.body.dataset.ready === "1"`)
	}

	put := func(h http.Header) int {
		t.Helper()
		h.Set("Cookie", fmt.Sprintf("%s=%s", cookie.Name, cookie.Value))
		code, _ := s.request(t, http.MethodPut, "/v1/namespaces/flags/keys/dark_mode", "true", h)
		return code
	}
	if code := put(http.Header{"X-Csrf-Token": {csrf}, "Origin": {"http://attacker.example"}, "Sec-Fetch-Site": {"cross-site"}}); code != http.StatusForbidden {
		t.Errorf("PUT with the session's cookie and CSRF token from another origin = %d; want 403", code)
	}
	if code := put(http.Header{}); code != http.StatusForbidden {
		t.Errorf("PUT with the session's cookie and no CSRF token = %d; want 403", code)
	}
	if got := e.opstate(t, s.db, "get", "flags", "dark_mode"); got != "false\n" {
		t.Errorf("opstate get flags dark_mode = %q after the refused PUTs; want false", got)
	}
	if code := put(http.Header{"X-Csrf-Token": {csrf}}); code != http.StatusNoContent {
		t.Errorf("PUT with the session's cookie and CSRF token from no other origin = %d; want 204", code)
	}
	if got := e.opstate(t, s.db, "get", "flags", "dark_mode"); got != "true\n" {
		t.Errorf("opstate get flags dark_mode = %q after the PUT taken; want true", got)
	}
	b.noDialogs()
}

// TestOpen uses the page of a server without tokens, which admits every
// request: the page opens with no login, says it is open and offers no
// logout. The script of pages of another origin or site changes nothing
// (the revert it posts would restore true; the CLI reads false), while
// the page's own switch is stored.
func TestOpen(t *testing.T) {
	e := setup(t)
	s := e.serveOpen(t)
	keepHistory(t, s.db, "flags", 100)
	e.opstate(t, s.db, "set", "flags", "dark_mode", "true") // change 1, which a revert would restore
	e.opstate(t, s.db, "set", "flags", "dark_mode", "false")
	b := e.newBrowser(t, 1280, 900)
	b.do("opening the page", chromedp.Navigate(s.url+"/"))
	b.waitFor("the application", `document.body.dataset.ready === "1"`)
	b.shoot("open")
	if got := b.text(q("whoami")); got != "open" {
		t.Errorf("whoami = %q; want open", got)
	}
	if got := eval[string](b, `document.body.dataset.scope`); got != "open" {
		t.Errorf("body data-scope = %q; want open", got)
	}
	if eval[bool](b, q("logout")+` !== null`) {
		t.Errorf("an open server's page offers a logout")
	}

	for _, origin := range attackOrigins(t, s) {
		b.do("the script of "+origin, chromedp.Navigate(origin+"/fetch"))
		b.waitFor("the script's requests settled", `document.title.startsWith("done")`)
		if got, want := eval[string](b, `document.title`), "done put failed, logout sent, revert sent"; got != want {
			t.Errorf("the script of %s: %q; want %q", origin, got, want)
		}
		if got := e.opstate(t, s.db, "get", "flags", "dark_mode"); got != "false\n" {
			t.Errorf("opstate get flags dark_mode = %q after the script of %s; want false", got, origin)
		}
	}

	b.do("opening the page", chromedp.Navigate(s.url+"/"))
	b.waitFor("the application", `document.body.dataset.ready === "1"`)
	b.openNamespace("flags")
	sw := rowOf("dark_mode") + " " + hook("key-switch")
	b.click("flipping dark_mode", sw)
	b.waitFor("dark_mode's switch on", `document.querySelector('`+sw+`').getAttribute("aria-checked") === "true"`)
	if got := e.opstate(t, s.db, "get", "flags", "dark_mode"); got != "true\n" {
		t.Errorf("opstate get flags dark_mode after the flip = %q; want true", got)
	}
	b.noDialogs()
}
