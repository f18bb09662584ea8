package serve

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/d8da9184/opstate"
)

// namespaces answers GET /v1/namespaces: {"NAME": LIVE_KEYS, ...}.
func (s *Server) namespaces(w http.ResponseWriter, r *http.Request) {
	if !noQuery(w, r) {
		return
	}
	nss, err := s.store.Namespaces()
	if err != nil {
		writeStoreError(w, err)
		return
	}
	m := make(map[string]int, len(nss))
	for _, ns := range nss {
		if !utf8.ValidString(ns.Name) {
			writeError(w, http.StatusInternalServerError, fmt.Sprintf("namespace %s is not valid UTF-8, which JSON cannot hold exactly; "+
				"the command's text output (opstate ns) prints it exactly, quoted", strconv.Quote(ns.Name)))
			return
		}
		m[ns.Name] = ns.Keys
	}
	writeJSON(w, http.StatusOK, m)
}

// namespace answers GET /v1/namespaces/{ns}, {"KEY": "VALUE", ...} for
// its live keys (with ?expiry=1, their expiries too: see items), and
// DELETE, which deletes them all.
func (s *Server) namespace(w http.ResponseWriter, r *http.Request, ns string, wr *opstate.Writer) {
	if r.Method == http.MethodGet && r.URL.RawQuery != "" {
		s.items(w, r, ns)
		return
	}
	if !noQuery(w, r) {
		return
	}
	if r.Method == http.MethodDelete {
		err := wr.DeleteNamespace(ns)
		s.wroteFlags(ns)
		if err != nil {
			writeStoreError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	m, err := s.store.List(ns)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	for k, v := range m {
		if !jsonExact(w, ns, k, v) {
			return
		}
	}
	writeJSON(w, http.StatusOK, m)
}

// jsonExact reports whether key k of namespace ns and its value v are
// valid UTF-8, which JSON holds exactly, and answers 500 when they are
// not: the answer is exact or absent, since encoding/json would replace
// invalid UTF-8 with U+FFFD.
func jsonExact(w http.ResponseWriter, ns, k, v string) bool {
	if utf8.ValidString(k) && utf8.ValidString(v) {
		return true
	}
	writeError(w, http.StatusInternalServerError, fmt.Sprintf("key %s of namespace %s or its value is not valid UTF-8, "+
		"which JSON cannot hold exactly; GET /v1/namespaces/{ns}/keys/{key} serves it byte for byte",
		strconv.Quote(k), strconv.Quote(ns)))
	return false
}

// key answers GET, HEAD, PUT and DELETE /v1/namespaces/{ns}/keys/{key};
// the writes go through wr.
func (s *Server) key(w http.ResponseWriter, r *http.Request, ns, key string, wr *opstate.Writer) {
	switch r.Method {
	case http.MethodPut:
		s.put(w, r, ns, key, wr)
	case http.MethodDelete:
		s.del(w, r, ns, key, wr)
	default:
		s.get(w, r, ns, key)
	}
}

// get answers GET and HEAD of a key: its value, byte for byte, with a
// strong ETag; 304 for a matching If-None-Match; 404 when it is missing
// or expired.
func (s *Server) get(w http.ResponseWriter, r *http.Request, ns, key string) {
	if !noQuery(w, r) {
		return
	}
	v, ok, err := s.store.Lookup(ns, key)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no key %s in namespace %s", strconv.Quote(key), strconv.Quote(ns)))
		return
	}
	etag := valueETag(v)
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "no-cache")
	if inm := r.Header.Get("If-None-Match"); inm != "" && parseETags(inm).matchWeak(etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(v)))
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, v)
}

// put answers PUT of a key: the body is the value, byte for byte;
// ?ttl=DURATION sets an expiry; If-None-Match: * stores only if the key
// is absent (SetIfAbsent), If-Match: "ETAG" only if its value is the one
// tagged (CompareAndSwap). A failed precondition is 412 and changes
// nothing; success is 204 with the new value's ETag.
func (s *Server) put(w http.ResponseWriter, r *http.Request, ns, key string, wr *opstate.Writer) {
	var ttl time.Duration
	q := r.URL.Query()
	for name, vs := range q {
		if name != "ttl" || len(vs) != 1 {
			writeError(w, http.StatusBadRequest, "PUT takes one query parameter, ttl, at most once")
			return
		}
		d, err := time.ParseDuration(vs[0])
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("ttl %s is not a positive duration such as 90s or 36h", strconv.Quote(vs[0])))
			return
		}
		ttl = d
	}
	im, inm := r.Header.Get("If-Match"), r.Header.Get("If-None-Match")
	var cond etagList
	switch {
	case im != "" && inm != "":
		writeError(w, http.StatusBadRequest, "If-Match and If-None-Match together are not taken")
		return
	case inm != "":
		if cond = parseETags(inm); !cond.any || len(cond.tags) != 0 {
			writeError(w, http.StatusBadRequest, "If-None-Match on PUT takes only *")
			return
		}
	case im != "":
		if cond = parseETags(im); !cond.any && len(cond.tags) == 0 {
			writeError(w, http.StatusBadRequest, "If-Match holds no entity tag")
			return
		}
	}
	v, ok := s.body(w, r)
	if !ok {
		return
	}
	var err error
	done := true
	switch {
	case inm != "" && ttl > 0:
		done, err = wr.SetIfAbsentWithTTL(ns, key, v, ttl)
	case inm != "":
		done, err = wr.SetIfAbsent(ns, key, v)
	case im != "":
		done, err = s.swap(ns, key, cond, func(old string) (bool, error) {
			if ttl > 0 {
				return wr.CompareAndSwapWithTTL(ns, key, old, v, ttl)
			}
			return wr.CompareAndSwap(ns, key, old, v)
		})
	case ttl > 0:
		err = wr.SetWithTTL(ns, key, v, ttl)
	default:
		err = wr.Set(ns, key, v)
	}
	s.wroteFlags(ns)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	if !done {
		writePrecondition(w, ns, key, inm != "")
		return
	}
	w.Header().Set("ETag", valueETag(v))
	w.WriteHeader(http.StatusNoContent)
}

// swap runs cas, a compare-and-swap or compare-and-delete, on the
// current value of the key if that value's ETag is in cond: the ETag
// stands for the value, and the Store's conditional write checks, in its
// own transaction, that the value is still the one read. It reports
// false, changing nothing, when the key is absent, the ETag does not
// match, or the value changed in between.
func (s *Server) swap(ns, key string, cond etagList, cas func(old string) (bool, error)) (bool, error) {
	cur, ok, err := s.store.Lookup(ns, key)
	if err != nil || !ok || !cond.matchStrong(valueETag(cur)) {
		return false, err
	}
	return cas(cur)
}

// writePrecondition answers 412 for a conditional write that changed
// nothing.
func writePrecondition(w http.ResponseWriter, ns, key string, ifAbsent bool) {
	what := "the key is absent or its value's ETag is not in If-Match"
	if ifAbsent {
		what = "the key exists (If-None-Match: *)"
	}
	writeError(w, http.StatusPreconditionFailed, fmt.Sprintf("precondition failed for key %s of namespace %s: %s; nothing was changed",
		strconv.Quote(key), strconv.Quote(ns), what))
}

// del answers DELETE of a key; If-Match: "ETAG" deletes it only if its
// value is the one tagged (CompareAndDelete), else 412.
func (s *Server) del(w http.ResponseWriter, r *http.Request, ns, key string, wr *opstate.Writer) {
	if !noQuery(w, r) {
		return
	}
	if r.Header.Get("If-None-Match") != "" {
		writeError(w, http.StatusBadRequest, "If-None-Match is not taken on DELETE")
		return
	}
	if im := r.Header.Get("If-Match"); im != "" {
		cond := parseETags(im)
		if !cond.any && len(cond.tags) == 0 {
			writeError(w, http.StatusBadRequest, "If-Match holds no entity tag")
			return
		}
		done, err := s.swap(ns, key, cond, func(old string) (bool, error) {
			return wr.CompareAndDelete(ns, key, old)
		})
		s.wroteFlags(ns)
		if err != nil {
			writeStoreError(w, err)
			return
		}
		if !done {
			writePrecondition(w, ns, key, false)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	err := wr.Delete(ns, key)
	s.wroteFlags(ns)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// body reads a request's body, at most MaxValueBytes: a longer one is
// answered 413, one that fails to arrive (too slowly: ReadTimeout) 400.
func (s *Server) body(w http.ResponseWriter, r *http.Request) (string, bool) {
	limit := s.opts.MaxValueBytes
	if r.ContentLength > limit {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is %d bytes, over the limit of %d", r.ContentLength, limit))
		return "", false
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if mb := (*http.MaxBytesError)(nil); errors.As(err, &mb) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over the limit of %d bytes", limit))
			return "", false
		}
		writeError(w, http.StatusBadRequest, "the body could not be read: "+err.Error())
		return "", false
	}
	return string(b), true
}
