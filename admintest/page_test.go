package admintest

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The tests find the page's elements by their data-test attributes
// (admintest/HOOKS.md), not by class, id, text or layout; the session's
// CSRF token by the page's meta element opstate-csrf, and the session by
// its cookie, opstate_session.

// hook returns the CSS selector of the elements whose data-test is name.
func hook(name string) string { return `[data-test="` + name + `"]` }

// q returns a JavaScript expression for the first element of hook name,
// or null.
func q(name string) string { return `document.querySelector('` + hook(name) + `')` }

// rowOf returns the CSS selector of the key table's row of key, which must
// need no CSS escaping.
func rowOf(key string) string { return hook("key-row") + `[data-key="` + key + `"]` }

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// rowJS returns a JavaScript expression for the key table's row of key,
// any string, or null.
func rowJS(key string) string {
	return `[...document.querySelectorAll('[data-test="key-row"]')].find(r => r.dataset.key === ` + js(key) + `) || null`
}

// cellJS returns a JavaScript expression for the hook of the row of key,
// or null.
func cellJS(key, name string) string {
	return `((r) => r && r.querySelector('[data-test="` + name + `"]'))(` + rowJS(key) + `)`
}

// login opens the page, logs in with secret and waits for the first
// namespace listing to be drawn.
func (b *browser) login(s *server, secret string) {
	b.t.Helper()
	b.loginAt(s.url, secret)
}

// loginAt is login at the server's address base, http://HOST:PORT.
func (b *browser) loginAt(base, secret string) {
	b.t.Helper()
	b.do("opening the login form",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(hook("login-form"))),
	)
	b.shoot("login")
	b.do("logging in",
		chromedp.SendKeys(chromedp.CSS(hook("login-token")), secret),
		chromedp.Click(chromedp.CSS(hook("login-submit"))),
	)
	b.waitFor("the application after the login", `document.body.dataset.ready === "1"`)
}

// openNamespace clicks namespace ns in the side list and waits for the
// page to show it (its title; the test waits for the rows it wants).
func (b *browser) openNamespace(ns string) {
	b.t.Helper()
	b.click("opening namespace "+ns, hook("ns-item")+`[data-ns="`+ns+`"] a`)
	b.waitFor("namespace "+ns+" open", q("ns-title")+`.textContent === `+js(ns))
}

// deleteKey deletes key, which must need no CSS escaping, as a person
// does: a click on its row's delete button arms it, a second deletes.
// Should the row be redrawn between the two (an event), disarming it, it
// starts again.
func (b *browser) deleteKey(key string) {
	b.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		b.click("arming the delete of "+key, rowOf(key)+" "+hook("key-delete"))
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(rowOf(key)+" "+hook("key-delete-confirm"))))
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("deleting %s: %v%s", key, err, b.consoleNote())
		}
	}
}

// text returns the text of the first element the JavaScript expression
// el gives, or fails the test if it gives none.
func (b *browser) text(el string) string {
	b.t.Helper()
	return eval[string](b, `((e) => { if (!e) throw new Error("no element: " + `+js(el)+`); return e.textContent; })(`+el+`)`)
}

// sessionCookie returns the session cookie of the server at url the
// browser holds, read through the DevTools protocol (the page's script
// cannot read it: HttpOnly).
func (b *browser) sessionCookie(url string) *network.Cookie {
	b.t.Helper()
	r, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{url}})
	if err != nil {
		b.t.Fatalf("reading the cookies of %s: %v", url, err)
	}
	for _, c := range r.Cookies {
		if c.Name == "opstate_session" {
			return c
		}
	}
	b.t.Fatalf("no opstate_session cookie for %s; the browser holds %d cookies", url, len(r.Cookies))
	return nil
}

// blockEvents makes the browser refuse every request for an event stream
// of the server at base, http://HOST:PORT: the page sees no change as it
// happens.
func (b *browser) blockEvents(base string) {
	b.t.Helper()
	b.do("blocking the event streams", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, network.SetBlockedURLs, network.SetBlockedURLsParams{
			URLPatterns: []*network.BlockPattern{{URLPattern: base + "/v1/namespaces/*/events", Block: true}},
		})
		return err
	}))
}

// noDialogs fails the test if the page opened a JavaScript dialog.
func (b *browser) noDialogs() {
	b.t.Helper()
	if d := b.dialogsOpened(); len(d) > 0 {
		b.t.Errorf("the page opened dialogs: %s", strings.Join(d, ", "))
	}
}

// TestLogin logs in with a wrong secret (refused, saying so) and then the
// write token: the page says who is logged in, with which scope; the
// session cookie is HttpOnly and SameSite=Strict, and the page's script
// sees no cookie; an inline script put into the page does not run (the
// Content-Security-Policy). Logging out shows the login form, and the session's
// cookie no longer admits to the API.
func TestLogin(t *testing.T) {
	e := setup(t)
	s := e.serve(t)
	e.opstate(t, s.db, "set", "flags", "dark_mode", "false")
	b := e.newBrowser(t, 1280, 900)

	b.do("opening the login form",
		chromedp.Navigate(s.url+"/"),
		chromedp.WaitVisible(chromedp.CSS(hook("login-form"))),
		chromedp.SendKeys(chromedp.CSS(hook("login-token")), "not-a-secret"),
		chromedp.Click(chromedp.CSS(hook("login-submit"))),
		chromedp.WaitVisible(chromedp.CSS(hook("login-error"))),
	)
	b.shoot("login-refused")

	b.login(s, s.write)
	b.shoot("logged-in")
	if got := b.text(q("whoami")); got != "operator (write)" {
		t.Errorf("whoami = %q; want %q", got, "operator (write)")
	}
	if got := eval[string](b, `document.body.dataset.scope`); got != "write" {
		t.Errorf("body data-scope = %q; want write", got)
	}
	c := b.sessionCookie(s.url)
	if !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict {
		t.Errorf("session cookie HttpOnly %v, SameSite %q; want true, Strict", c.HTTPOnly, c.SameSite)
	}
	if got := eval[string](b, `document.cookie`); got != "" {
		t.Errorf("document.cookie = %q; want none visible to the page's script", got)
	}
	// The Content-Security-Policy runs no inline script: one put into
	// the page does not run, and the browser reports the refusal.
	if eval[bool](b, `(() => { const s = document.createElement("script"); s.textContent = "window.inlineRan = true"; document.body.append(s); return window.inlineRan === true; })()`) {
		t.Errorf("an inline script put into the page ran")
	}
	b.waitConsole("the browser's report of the inline script refused", "Content Security Policy")
	b.clearConsole()

	// Log out: the login form again, and the session's cookie no longer
	// admits to the API.
	admits := func() int {
		code, _ := s.request(t, http.MethodGet, "/v1/namespaces", "", http.Header{"Cookie": {c.Name + "=" + c.Value}})
		return code
	}
	if code := admits(); code != http.StatusOK {
		t.Fatalf("GET /v1/namespaces with the session's cookie = %d; want 200", code)
	}
	b.do("logging out",
		chromedp.Click(chromedp.CSS(hook("logout"))),
		chromedp.WaitVisible(chromedp.CSS(hook("login-form"))),
	)
	if code := admits(); code != http.StatusUnauthorized {
		t.Errorf("GET /v1/namespaces with the cookie of the session logged out = %d; want 401", code)
	}
	b.noDialogs()
	if c := b.consoleErrors(); len(c) > 0 {
		t.Errorf("the page's console errors: %s", strings.Join(c, "; "))
	}
}
