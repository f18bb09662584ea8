package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/d8da9184/opstate"
)

// Server is a [opstate.Store] over HTTP: an http.Handler for the OFREP
// and key-value endpoints, and [Server.Serve] to run it with the limits
// of its [Options]. It does not close the Store.
type Server struct {
	store *opstate.Store
	opts  Options

	// tokens is the current *Tokens; nil admits everyone.
	tokens atomic.Pointer[Tokens]

	// streams counts the event streams open, against opts.MaxStreams.
	streams atomic.Int64

	// pace spaces the event streams' sends; bursts holds the buffers of
	// their sends (*[]byte) between two; feeds are the Watches they share.
	pace   pacer
	bursts sync.Pool
	feeds  feeds

	// bulkCache keeps the bulk evaluation while Serve runs.
	bulkCache bulkCache

	// sessions are the admin page's logins; crossOrigin refuses the
	// state-changing requests of other sites' pages; now is the clock of
	// the sessions' idle time.
	sessions    sessions
	crossOrigin *http.CrossOriginProtection
	now         func() time.Time

	// ending is closed when Serve begins to shut down: the event streams
	// then end. endOnce closes it.
	ending  chan struct{}
	endOnce sync.Once
}

// New returns a Server of store configured by opts, or an error matching
// [ErrInvalidOption] for options it cannot honour.
func New(store *opstate.Store, opts Options) (*Server, error) {
	if store == nil {
		return nil, fmt.Errorf("%w: nil Store", ErrInvalidOption)
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{store: store, opts: o, ending: make(chan struct{}), now: time.Now}
	s.bursts.New = func() any { return new([]byte) }
	s.tokens.Store(o.Tokens)
	s.sessions.max = o.MaxSessions
	s.crossOrigin = http.NewCrossOriginProtection()
	for _, origin := range o.CORSOrigins {
		// Checked by withDefaults: the pages of these origins may write
		// with their tokens, as before.
		if err := s.crossOrigin.AddTrustedOrigin(origin); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidOption, err)
		}
	}
	return s, nil
}

// SetTokens replaces the tokens the Server admits, for the requests that
// begin after it returns; requests under way, event streams included, go
// on. It refuses nil for a Server that has tokens: a server is not opened
// to everyone while it runs.
func (s *Server) SetTokens(t *Tokens) error {
	if t == nil && s.tokens.Load() != nil {
		return fmt.Errorf("%w: nil Tokens for a server that has tokens", ErrInvalidOption)
	}
	s.tokens.Store(t)
	s.sessions.keep(t)
	return nil
}

// ServeHTTP answers one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, rerr := parseRoute(r.URL.EscapedPath())
	if r.Method == http.MethodOptions {
		s.preflight(w, r, rt)
		return
	}
	if rerr == nil && rt.kind.page() {
		if s.opts.UI {
			s.page(w, r, rt)
			return
		}
		rerr = &routeError{http.StatusNotFound, "no such endpoint"}
	}
	s.cors(w, r)
	tok, ok := s.authorize(w, r, rt)
	if !ok {
		return
	}
	if rerr != nil {
		writeError(w, rerr.code, rerr.msg)
		return
	}
	if !slices.Contains(rt.methods(), r.Method) {
		w.Header().Set("Allow", strings.Join(append(rt.methods(), http.MethodOptions), ", "))
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed here", r.Method))
		return
	}
	switch rt.kind {
	case routeNamespaces:
		s.namespaces(w, r)
	case routeNamespace:
		s.namespace(w, r, rt.ns, s.writerFor(tok))
	case routeKey:
		s.key(w, r, rt.ns, rt.key, s.writerFor(tok))
	case routeEvents:
		s.events(w, r, rt.ns)
	case routeBulk:
		s.bulk(w, r, tok)
	case routeFlag:
		s.flag(w, r, rt.key)
	case routeFlagEvents:
		s.flagEvents(w, r)
	case routeHistory:
		s.history(w, r, rt.ns)
	case routeRevert:
		s.revert(w, r, rt.ns, rt.key, s.writerFor(tok))
	}
}

// authorize checks the request's credential, answering 401 or 403 and
// returning false when it does not admit the request, and returns the
// token that admits it (none when the Server has no tokens). It runs
// before the path is checked, so that a caller without a credential
// learns nothing of which paths exist. A request that changes state (see
// route.writes) needs ScopeWrite; every other ScopeRead.
//
// The credential is a token's secret in a header, or else the admin
// page's session cookie (see session.go). A request without a header
// credential that changes state must not come from another site's page
// (Sec-Fetch-Site, else Origin against Host: http.CrossOriginProtection,
// the CORS origins trusted), or it is answered 403 whatever else it
// carries; with a session cookie, it must also carry the session's CSRF
// token in X-CSRF-Token.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, rt route) (*token, bool) {
	secret, ok := credential(r)
	write := rt.writes(r.Method)
	if !ok && write && !s.sameSite(w, r) {
		return nil, false
	}
	t := s.tokens.Load()
	if t == nil {
		// Open, and so on a loopback address alone: a request must
		// name a loopback host too, or a web page elsewhere could reach
		// the server through DNS rebinding (its name made to resolve to
		// 127.0.0.1, the browser takes the server for the page's own
		// origin).
		if !loopbackHost(r.Host) {
			writeError(w, http.StatusForbidden, "without tokens, serve answers only requests to a loopback host "+
				"(Host: localhost, 127.0.0.1 or [::1]); run it with -tokens to serve other names, such as a proxy's")
			return nil, false
		}
		return nil, true
	}
	tok, found := token{}, false
	switch {
	case ok:
		tok, found = t.authenticate(secret, false)
	case rt.kind == routeFlagEvents && r.Method == http.MethodGet && len(r.URL.Query()["ticket"]) == 1:
		// A browser's EventSource sends no header of its own: the OFREP
		// event stream takes the ticket that the bulk evaluation
		// announced in its URL instead.
		tok, found = t.authenticate(r.URL.Query().Get("ticket"), true)
	default:
		var se *session
		if se, tok, found = s.sessionOf(r); found && write && !se.checkCSRF(r) {
			writeError(w, http.StatusForbidden, "a request of the admin page that changes state needs the session's "+csrfHeader+" header")
			return nil, false
		}
	}
	if !found {
		w.Header().Set("WWW-Authenticate", `Bearer realm="opstate"`)
		msg := "a token is required: Authorization: Bearer SECRET, or X-API-Key: SECRET"
		if ok {
			msg = "the token is not valid"
		}
		writeError(w, http.StatusUnauthorized, msg)
		return nil, false
	}
	if write && tok.scope != ScopeWrite {
		writeError(w, http.StatusForbidden, fmt.Sprintf("token %q has scope %s and may not write", tok.name, tok.scope))
		return nil, false
	}
	return &tok, true
}

// sameSite answers 403 and returns false for a request that a page of
// another site sent (http.CrossOriginProtection; a page of a CORS origin
// is not another site's).
func (s *Server) sameSite(w http.ResponseWriter, r *http.Request) bool {
	if err := s.crossOrigin.Check(r); err != nil {
		writeError(w, http.StatusForbidden, "a cross-site request that changes state is refused (Sec-Fetch-Site or Origin names another site)")
		return false
	}
	return true
}

// credential returns the secret a request presents: the credentials of
// "Authorization: Bearer SECRET" (the scheme in any case), or else the
// value of X-API-Key. ok is false when it presents neither.
func credential(r *http.Request) (secret string, ok bool) {
	if a := r.Header.Get("Authorization"); a != "" {
		scheme, cred, _ := strings.Cut(a, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return "", true // some other scheme: a credential, never valid
		}
		return strings.TrimSpace(cred), true
	}
	if k := r.Header.Get("X-API-Key"); k != "" {
		return k, true
	}
	return "", false
}

// Serve accepts connections on l and answers them until ctx ends or l
// fails, with the limits of the Server's Options: at most MaxConns
// connections (beyond, 503 and close), the read, write and idle timeouts,
// MaxHeaderBytes. When ctx ends it stops accepting, closes l, ends every
// event stream (each sends its end event), waits up to ShutdownTimeout
// for the requests in flight and then closes what is left, and returns
// nil. It returns l's error if l fails first. Call it once.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		ReadTimeout:       s.opts.ReadTimeout,
		WriteTimeout:      s.opts.WriteTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		MaxHeaderBytes:    s.opts.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.opts.Logger.Handler(), slog.LevelWarn),
	}
	hs.RegisterOnShutdown(s.endStreams)
	s.startBulkCache()
	defer s.stopBulkCache()
	served := make(chan error, 1)
	go func() { served <- hs.Serve(newLimitListener(l, s.opts.MaxConns)) }()
	select {
	case err := <-served:
		s.endStreams()
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// endStreams makes every event stream send its end event and return.
func (s *Server) endStreams() {
	s.endOnce.Do(func() { close(s.ending) })
}

// loopbackHost reports whether host, a request's Host (with or without a
// port), names this machine's loopback interface: localhost or a name
// under it (RFC 6761), or a loopback address.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
