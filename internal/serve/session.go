package serve

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// sessionCookie is the name of the admin page's session cookie.
const sessionCookie = "opstate_session"

// csrfHeader is the request header in which the page's script sends its
// session's CSRF token with every state-changing request.
const csrfHeader = "X-CSRF-Token"

// sessionIdle ends a session that made no request for that long.
const sessionIdle = 12 * time.Hour

// session is one login of the admin page: a browser that presented a
// token's secret. It holds the token's hash, not its secret: the
// session lasts while a token with that hash is in the Server's tokens
// (a token removed, or its secret changed, ends it), with that token's
// current scope.
type session struct {
	key  [sha256.Size]byte // the SHA-256 of the session id: the sessions' map key
	hash [sha256.Size]byte // the token's secret's hash
	csrf string
	used time.Time // the last request; guarded by sessions.mu
}

// sessions are a Server's logins, at most max; a login past it ends the
// session least recently used.
type sessions struct {
	max int
	mu  sync.Mutex // guards byKey and every session's used
	// byKey finds a session by the SHA-256 of its id, so that the time a
	// lookup takes says nothing of the ids themselves.
	byKey map[[sha256.Size]byte]*session
}

// randomString returns 256 random bits, base64url-encoded.
func randomString() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("serve: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// create starts a session for the token whose secret hashes to hash, at
// now, and returns its id (the cookie's value) and the session.
func (ss *sessions) create(hash [sha256.Size]byte, now time.Time) (id string, se *session, err error) {
	id, err = randomString()
	if err != nil {
		return "", nil, err
	}
	csrf, err := randomString()
	if err != nil {
		return "", nil, err
	}
	se = &session{key: sha256.Sum256([]byte(id)), hash: hash, csrf: csrf, used: now}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.byKey == nil {
		ss.byKey = map[[sha256.Size]byte]*session{}
	}
	for len(ss.byKey) >= ss.max {
		var oldest *session
		for _, o := range ss.byKey {
			if oldest == nil || o.used.Before(oldest.used) {
				oldest = o
			}
		}
		delete(ss.byKey, oldest.key)
	}
	ss.byKey[se.key] = se
	return id, se, nil
}

// lookup returns the session whose id is id, unless it has been idle for
// sessionIdle (then it ends), and marks it used at now.
func (ss *sessions) lookup(id string, now time.Time) (*session, bool) {
	if id == "" || len(id) > 64 {
		return nil, false
	}
	key := sha256.Sum256([]byte(id))
	ss.mu.Lock()
	defer ss.mu.Unlock()
	se, ok := ss.byKey[key]
	if !ok {
		return nil, false
	}
	if now.Sub(se.used) > sessionIdle {
		delete(ss.byKey, key)
		return nil, false
	}
	se.used = now
	return se, true
}

// end ends the session se.
func (ss *sessions) end(se *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.byKey, se.key)
}

// keep ends every session whose token is not in t (nil: every session).
func (ss *sessions) keep(t *Tokens) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for k, se := range ss.byKey {
		if _, ok := t.byHash(se.hash); !ok {
			delete(ss.byKey, k)
		}
	}
}

// len returns how many sessions there are.
func (ss *sessions) len() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.byKey)
}

// checkCSRF reports whether r carries se's CSRF token in its header.
func (se *session) checkCSRF(r *http.Request) bool {
	got := r.Header.Get(csrfHeader)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(se.csrf)) == 1
}

// byHash returns the token of t whose secret's hash is hash; t may be
// nil (no token).
func (t *Tokens) byHash(hash [sha256.Size]byte) (token, bool) {
	if t == nil {
		return token{}, false
	}
	for _, tok := range t.list {
		if subtle.ConstantTimeCompare(tok.hash[:], hash[:]) == 1 {
			return tok, true
		}
	}
	return token{}, false
}

// setSessionCookie sets the session cookie to id on w: HttpOnly (no
// script reads it), SameSite=Strict (no other site's page sends it),
// Path=/, Secure when r came over TLS, to the server or (X-Forwarded-Proto:
// https) to the proxy in front of it, and no Max-Age (it ends with the
// browser). An empty id clears it. A client that sends X-Forwarded-Proto
// itself gains nothing: it can only make its own cookie Secure.
func setSessionCookie(w http.ResponseWriter, r *http.Request, id string) {
	c := &http.Cookie{
		Name:     sessionCookie,
		Value:    id,
		Path:     "/",
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
		Secure:   r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https"),
	}
	if id == "" {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

// sessionOf returns the session of r's cookie and its token, if r has one
// whose token is still among the Server's tokens.
func (s *Server) sessionOf(r *http.Request) (*session, token, bool) {
	t := s.tokens.Load()
	if t == nil {
		return nil, token{}, false
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, token{}, false
	}
	se, ok := s.sessions.lookup(c.Value, s.now())
	if !ok {
		return nil, token{}, false
	}
	tok, ok := t.byHash(se.hash)
	if !ok {
		s.sessions.end(se)
		return nil, token{}, false
	}
	return se, tok, true
}
