package serve_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/d8da9184/opstate/internal/serve"
)

// TestPageHeaders checks the admin page's answer: HTML with a
// Content-Security-Policy that admits only the page's own script and
// style files (no inline script or style, no eval) and no framing,
// nosniff, no caching; and a page that holds no inline script, no
// inline style and no event-handler attribute, which that policy would
// block.
func TestPageHeaders(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts serve.Options
	}{
		{"open", serve.Options{UI: true}},
		{"login form", serve.Options{UI: true, Tokens: testTokens(t)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, tt.opts)
			resp, body := f.want(t, 200, request{method: "GET", path: "/"})
			checkPageHeaders(t, resp)
			if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type = %q; want text/html; charset=utf-8", ct)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q; want no-store", cc)
			}
			checkNoInline(t, body)
		})
	}
}

// checkPageHeaders fails t unless resp has the page's security headers.
func checkPageHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'",
		"connect-src 'self'", "form-action 'self'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy = %q; want %s in it", csp, want)
		}
	}
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "*", "data:"} {
		if strings.Contains(csp, bad) {
			t.Errorf("Content-Security-Policy = %q; holds %s", csp, bad)
		}
	}
	if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q; want nosniff", got)
	}
	if got := resp.Header.Get("X-Frame-Options"); got != "DENY" {
		t.Errorf("X-Frame-Options = %q; want DENY", got)
	}
}

var (
	scriptTag    = regexp.MustCompile(`(?is)<script\b[^>]*>`)
	inlineStyle  = regexp.MustCompile(`(?i)<style\b|\sstyle\s*=`)
	eventHandler = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
)

// checkNoInline fails t if page holds a script without src, inline
// style, or an event-handler attribute.
func checkNoInline(t *testing.T, page string) {
	t.Helper()
	for _, tag := range scriptTag.FindAllString(page, -1) {
		if !strings.Contains(tag, `src="/ui/`) {
			t.Errorf("page holds an inline script: %s", tag)
		}
	}
	if m := inlineStyle.FindString(page); m != "" {
		t.Errorf("page holds inline style: %q", m)
	}
	if m := eventHandler.FindString(page); m != "" {
		t.Errorf("page holds an event-handler attribute: %q", m)
	}
}

// TestPageAssets checks the page's files: each served with its type,
// nosniff and an ETag that If-None-Match turns into 304, without a
// token (the login form needs its style); HEAD without a body; another
// method 405; and a name that is not one of them not served.
func TestPageAssets(t *testing.T) {
	f := start(t, serve.Options{UI: true, Tokens: testTokens(t)})
	for name, ct := range map[string]string{
		"app.js":   "text/javascript; charset=utf-8",
		"app.css":  "text/css; charset=utf-8",
		"icon.svg": "image/svg+xml",
	} {
		resp, body := f.want(t, 200, request{method: "GET", path: "/ui/" + name})
		if got := resp.Header.Get("Content-Type"); got != ct {
			t.Errorf("/ui/%s: Content-Type = %q; want %q", name, got, ct)
		}
		checkPageHeaders(t, resp)
		if body == "" {
			t.Errorf("/ui/%s: empty", name)
		}
		etag := resp.Header.Get("ETag")
		if etag == "" {
			t.Fatalf("/ui/%s: no ETag", name)
		}
		f.want(t, 304, request{method: "GET", path: "/ui/" + name, header: map[string]string{"If-None-Match": etag}})
		if _, body := f.want(t, 200, request{method: "HEAD", path: "/ui/" + name}); body != "" {
			t.Errorf("HEAD /ui/%s has a body", name)
		}
		f.want(t, 405, request{method: "PUT", path: "/ui/" + name, body: "x"})
	}
	for _, p := range []string{"/ui/index.html", "/ui/", "/ui/..%2Fpage.go", "/ui/app.js/x", "/index.html"} {
		f.want(t, 401, request{method: "GET", path: p}) // an unknown path: no token, no answer about it
	}
	// The page's script writes values as text, never as markup.
	_, js := f.want(t, 200, request{method: "GET", path: "/ui/app.js"})
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
}

// TestPageOff checks that without Options.UI nothing of the page is
// served: / and /ui/ are unknown paths.
func TestPageOff(t *testing.T) {
	f := start(t, serve.Options{})
	for _, p := range []string{"/", "/ui/app.js", "/ui/login"} {
		f.want(t, 404, request{method: "GET", path: p})
	}
	f.want(t, 404, request{method: "POST", path: "/ui/login", body: "token=x",
		header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}})
	f = start(t, serve.Options{Tokens: testTokens(t)})
	f.want(t, 401, request{method: "GET", path: "/"})
}

// TestPageLoopback checks that without tokens the page, like the API,
// answers only requests to a loopback host (DNS rebinding).
func TestPageLoopback(t *testing.T) {
	f := start(t, serve.Options{UI: true})
	f.want(t, 403, request{method: "GET", path: "/", header: map[string]string{"Host": "evil.example"}})
	f.want(t, 403, request{method: "GET", path: "/ui/app.js", header: map[string]string{"Host": "evil.example:8047"}})
	f.want(t, 200, request{method: "GET", path: "/", header: map[string]string{"Host": "localhost:8047"}})
}

// TestPageXSS checks that what the page's frame holds from the server
// (here the flags namespace's name) is escaped, and that the value of a
// key never goes into the page's HTML: the script fetches it as data.
func TestPageXSS(t *testing.T) {
	xss := `<img src=x onerror=alert(1)>`
	f := start(t, serve.Options{UI: true, FlagsNamespace: `"><script>alert(1)</script>`})
	if err := f.store.Set("flags", "xss", xss); err != nil {
		t.Fatal(err)
	}
	_, body := f.want(t, 200, request{method: "GET", path: "/"})
	if strings.Contains(body, xss) || strings.Contains(body, "<script>alert") {
		t.Errorf("page holds markup from the store or options:\n%s", body)
	}
	checkNoInline(t, body)
}
