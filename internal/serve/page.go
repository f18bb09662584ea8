package serve

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html/template"
	"mime"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
)

// ui holds the admin page: its template and the files its script, style
// and icon are served from, as they are (no build step).
//
//go:embed ui
var ui embed.FS

// pageTemplate is ui/index.html: the login form or the application's
// frame, which ui/app.js fills.
var pageTemplate = template.Must(template.ParseFS(ui, "ui/index.html"))

// asset is a file served under /ui/: its bytes, type and ETag.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// assets are the files of ui/ served under /ui/NAME, read once.
var assets = func() map[string]asset {
	m := map[string]asset{}
	for _, name := range []string{"app.js", "app.css", "icon.svg"} {
		b, err := ui.ReadFile("ui/" + name)
		if err != nil {
			panic("serve: embedded ui/" + name + " missing: " + err.Error())
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(name))
		if path.Ext(name) == ".js" {
			ct = "text/javascript; charset=utf-8" // what RFC 9239 names, whatever the system's mime table says
		}
		m[name] = asset{body: b, contentType: ct, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`}
	}
	return m
}()

// contentSecurityPolicy is the admin page's: its own script and style
// files alone (no inline script, no inline style, no eval), requests to
// its own origin alone, no frame may hold it, forms post only to it.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// loginBodyBytes bounds the login form's body.
const loginBodyBytes = 4 << 10

// pageData is what ui/index.html shows.
type pageData struct {
	Login bool   // the login form, not the application
	Error string // why a login was refused
	Who   string // the token's name; "" when open
	Scope string // "read", "write", or "open" without tokens
	CSRF  string // the session's CSRF token; "" when open
	Flags string // the OFREP namespace
}

// page answers the admin page's routes: the page itself at /, its files
// under /ui/, and the login and logout. Every answer carries the
// page's security headers. Without tokens, as the API, it answers
// requests to a loopback host alone.
func (s *Server) page(w http.ResponseWriter, r *http.Request, rt route) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if s.tokens.Load() == nil && !loopbackHost(r.Host) {
		writeError(w, http.StatusForbidden, "without tokens, serve answers only requests to a loopback host "+
			"(Host: localhost, 127.0.0.1 or [::1]); run it with -tokens to serve other names, such as a proxy's")
		return
	}
	if !slices.Contains(rt.methods(), r.Method) {
		h.Set("Allow", strings.Join(rt.methods(), ", "))
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed here")
		return
	}
	switch rt.kind {
	case routeAsset:
		serveAsset(w, r, assets[rt.key])
	case routePage:
		if !noQuery(w, r) {
			return
		}
		s.app(w, r)
	case routeLogin:
		s.login(w, r)
	case routeLogout:
		s.logout(w, r)
	}
}

// serveAsset answers GET or HEAD of one of the page's files.
func serveAsset(w http.ResponseWriter, r *http.Request, a asset) {
	h := w.Header()
	h.Set("ETag", a.etag)
	h.Set("Cache-Control", "no-cache")
	if inm := r.Header.Get("If-None-Match"); inm != "" && parseETags(inm).matchWeak(a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", a.contentType)
	h.Set("Content-Length", strconv.Itoa(len(a.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(a.body)
	}
}

// app answers GET / : the application for a session (or for everyone
// without tokens), else the login form.
func (s *Server) app(w http.ResponseWriter, r *http.Request) {
	d := pageData{Scope: "open", Flags: s.opts.FlagsNamespace}
	if s.tokens.Load() != nil {
		se, tok, ok := s.sessionOf(r)
		if !ok {
			s.renderPage(w, r, http.StatusOK, pageData{Login: true})
			return
		}
		d.Who, d.Scope, d.CSRF = tok.name, tok.scope.String(), se.csrf
	}
	s.renderPage(w, r, http.StatusOK, d)
}

// renderPage writes ui/index.html with d. The page is never cached: it
// holds the session's CSRF token.
func (s *Server) renderPage(w http.ResponseWriter, r *http.Request, code int, d pageData) {
	var b bytes.Buffer
	if err := pageTemplate.Execute(&b, d); err != nil {
		writeError(w, http.StatusInternalServerError, "serve: render the page: "+err.Error())
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		w.Write(b.Bytes())
	}
}

// login answers POST /ui/login, the login form (token=SECRET): for a
// token's secret, a new session, its cookie, and 303 to /; else 401 and
// the form again, saying why. A request from another site's page is
// refused (403) before its secret is looked at; without tokens, there is
// nothing to log in to (303 to /).
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if !s.sameSite(w, r) {
		return
	}
	t := s.tokens.Load()
	if t == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, loginBodyBytes)
	if err := r.ParseForm(); err != nil {
		s.renderPage(w, r, http.StatusBadRequest, pageData{Login: true, Error: "the form could not be read"})
		return
	}
	tok, ok := t.authenticate(r.PostForm.Get("token"), false)
	if !ok {
		s.renderPage(w, r, http.StatusUnauthorized, pageData{Login: true, Error: "the token is not valid"})
		return
	}
	if se, _, had := s.sessionOf(r); had {
		s.sessions.end(se) // a login always starts a new session: none is fixed in advance
	}
	id, _, err := s.sessions.create(tok.hash, s.now())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	setSessionCookie(w, r, id)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout answers POST /ui/logout: the session ends and its cookie is
// cleared (204). It needs the session's CSRF token, as every
// state-changing request of the page does.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if !s.sameSite(w, r) {
		return
	}
	se, _, ok := s.sessionOf(r)
	if !ok {
		setSessionCookie(w, r, "")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if !se.checkCSRF(r) {
		writeError(w, http.StatusForbidden, "logout needs the session's "+csrfHeader+" header")
		return
	}
	s.sessions.end(se)
	setSessionCookie(w, r, "")
	w.WriteHeader(http.StatusNoContent)
}
