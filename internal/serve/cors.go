package serve

import (
	"net/http"
	"slices"
	"strings"
)

// The CORS answers: what a page of an allowed origin may send and read.
const (
	corsMethods = "GET, HEAD, POST, PUT, DELETE"
	// corsHeaders are the request headers a page may set: the two of
	// OFREP's credentials, the body's type and the preconditions.
	corsHeaders = "Authorization, X-API-Key, Content-Type, If-Match, If-None-Match, Last-Event-ID"
	// corsExpose lets a page read the ETag, which OFREP's browser
	// providers send back in If-None-Match.
	corsExpose = "ETag, Retry-After"
	corsMaxAge = "600"
)

// cors adds the CORS headers of an answer to a request from an allowed
// origin, and reports whether the origin is allowed. A request without
// Origin, or from an origin not allowed, gets no CORS header but Vary.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	if len(s.opts.CORSOrigins) == 0 {
		return false
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if origin == "" || !slices.Contains(s.opts.CORSOrigins, origin) {
		return false
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Expose-Headers", corsExpose)
	return true
}

// preflight answers an OPTIONS request: 204 with the methods the path
// answers, and, for an allowed origin, CORS's permissions. No credential
// is asked for: browsers send none with a preflight.
func (s *Server) preflight(w http.ResponseWriter, r *http.Request, rt route) {
	allowed := s.cors(w, r)
	methods := strings.Join(append(rt.methods(), http.MethodOptions), ", ")
	h := w.Header()
	h.Set("Allow", methods)
	if allowed && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Add("Vary", "Access-Control-Request-Method")
		h.Add("Vary", "Access-Control-Request-Headers")
		h.Set("Access-Control-Allow-Methods", corsMethods)
		h.Set("Access-Control-Allow-Headers", corsHeaders)
		h.Set("Access-Control-Max-Age", corsMaxAge)
	}
	w.WriteHeader(http.StatusNoContent)
}
