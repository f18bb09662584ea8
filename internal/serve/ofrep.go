package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"unicode/utf8"

	"github.com/d8da9184/opstate"
)

// OFREP's error codes, as its OpenAPI file names them.
const (
	codeParseError     = "PARSE_ERROR"
	codeInvalidContext = "INVALID_CONTEXT"
	codeFlagNotFound   = "FLAG_NOT_FOUND"
)

// reasonStatic is the reason of every evaluation: a flag's value is its
// key's, whatever the context.
const reasonStatic = "STATIC"

// flagEventsPath is the path of the OFREP event stream, which the bulk
// evaluation announces.
const flagEventsPath = "/ofrep/v1/events"

// evaluation is one flag's successful evaluation.
type evaluation struct {
	Key      string            `json:"key"`
	Value    json.RawMessage   `json:"value"`
	Reason   string            `json:"reason"`
	Metadata map[string]string `json:"metadata"`
}

// evaluationFailure is one flag's failed evaluation, and the answer of a
// single evaluation that failed (400, 404).
type evaluationFailure struct {
	Key          string `json:"key"`
	ErrorCode    string `json:"errorCode"`
	ErrorDetails string `json:"errorDetails,omitempty"`
}

// bulkFailure is the answer of a bulk evaluation that failed as a whole.
type bulkFailure struct {
	ErrorCode    string `json:"errorCode"`
	ErrorDetails string `json:"errorDetails,omitempty"`
}

// generalError is the answer 500.
type generalError struct {
	ErrorDetails string `json:"errorDetails"`
}

// bulkRest is the answer of a bulk evaluation but its flags, which
// writeBulk puts first: {"flags":[...],"metadata":{...},"eventStreams":[...]}.
type bulkRest struct {
	Metadata     map[string]string `json:"metadata"`
	EventStreams []eventStream     `json:"eventStreams"`
}

// writeBulk writes the answer 200 of a bulk evaluation: flags, the JSON
// array of the evaluations (a flagSet's, which this package encoded), then
// rest's fields. It is written by hand because encoding/json checks and
// compacts JSON it is given whole, which cost more than the rest of the
// answer (docs/performance.md has the profile).
func writeBulk(w http.ResponseWriter, flags []byte, rest bulkRest) {
	r, err := json.Marshal(rest)
	if err != nil { // never: this package's types always encode
		writeJSON(w, http.StatusInternalServerError, generalError{ErrorDetails: err.Error()})
		return
	}
	b := make([]byte, 0, len(`{"flags":,}`)+len(flags)+len(r)+1)
	b = append(b, `{"flags":`...)
	b = append(b, flags...)
	b = append(b, ',')
	b = append(b, r[1:]...) // rest's fields, and its closing brace
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// eventStream announces the OFREP event stream. Its endpoint has no
// origin: a provider joins its own base URL's origin to requestUri, which
// keeps it right behind a proxy that serves another origin.
type eventStream struct {
	Type     string `json:"type"` // "sse"
	Endpoint struct {
		RequestURI string `json:"requestUri"`
	} `json:"endpoint"`
}

// flagValue returns a stored value as an OFREP value: the value read as
// JSON when it is JSON (true, 3, 2.5, {"a":1}, "text"), else the string
// itself. ok is false for a value that is neither JSON nor valid UTF-8,
// which JSON cannot hold exactly.
func flagValue(v string) (json.RawMessage, bool) {
	if json.Valid([]byte(v)) {
		return json.RawMessage(v), true
	}
	if !utf8.ValidString(v) {
		return nil, false
	}
	b, _ := json.Marshal(v) // a valid UTF-8 string always encodes
	return b, true
}

// evaluate returns the evaluation of flag key with value v.
func (s *Server) evaluate(key, v string) (evaluation, *evaluationFailure) {
	val, ok := flagValue(v)
	if !ok {
		return evaluation{}, &evaluationFailure{Key: key, ErrorCode: codeParseError,
			ErrorDetails: fmt.Sprintf("the value of flag %q in namespace %q is neither JSON nor valid UTF-8", key, s.opts.FlagsNamespace)}
	}
	return evaluation{Key: key, Value: val, Reason: reasonStatic, Metadata: s.flagMetadata()}, nil
}

// flagMetadata is the metadata of every flag, and of the flag set: the
// namespace the flags are the keys of.
func (s *Server) flagMetadata() map[string]string {
	return map[string]string{"namespace": s.opts.FlagsNamespace}
}

// readEvaluationRequest reads the body of an OFREP evaluation request and
// checks it: a JSON object (else PARSE_ERROR) whose context, if present
// and not null, is an object whose targetingKey, if present, is a string
// (else INVALID_CONTEXT). The context is not otherwise used: there is no
// targeting. A missing context is taken, as OFREP's JavaScript providers
// send {} when the application set none. It returns the error code and
// details, "" when the request is good, or ok false when it has answered
// (413, an unreadable body).
func (s *Server) readEvaluationRequest(w http.ResponseWriter, r *http.Request) (code, details string, ok bool) {
	b, ok := s.body(w, r)
	if !ok {
		return "", "", false
	}
	var req map[string]json.RawMessage
	if err := json.Unmarshal([]byte(b), &req); err != nil || req == nil {
		return codeParseError, `the body is not a JSON object such as {"context":{"targetingKey":"user-1"}}`, true
	}
	c, has := req["context"]
	if !has || string(c) == "null" {
		return "", "", true
	}
	var ctx map[string]json.RawMessage
	if err := json.Unmarshal(c, &ctx); err != nil || ctx == nil {
		return codeInvalidContext, "context is not a JSON object", true
	}
	if tk, has := ctx["targetingKey"]; has {
		var k string
		if err := json.Unmarshal(tk, &k); err != nil {
			return codeInvalidContext, "context.targetingKey is not a string", true
		}
	}
	return "", "", true
}

// flag answers POST /ofrep/v1/evaluate/flags/{key}: 200 with the flag's
// evaluation, 404 FLAG_NOT_FOUND when its key is missing or expired, 400
// for a bad request (or a value JSON cannot hold: PARSE_ERROR), 500 when
// the Store fails.
func (s *Server) flag(w http.ResponseWriter, r *http.Request, key string) {
	code, details, ok := s.readEvaluationRequest(w, r)
	if !ok {
		return
	}
	if code != "" {
		writeJSON(w, http.StatusBadRequest, evaluationFailure{Key: key, ErrorCode: code, ErrorDetails: details})
		return
	}
	v, found, err := s.store.Lookup(s.opts.FlagsNamespace, key)
	if err != nil && !errors.Is(err, opstate.ErrEmptyName) { // an empty key is a flag not found
		writeJSON(w, http.StatusInternalServerError, generalError{ErrorDetails: err.Error()})
		return
	}
	if !found {
		writeJSON(w, http.StatusNotFound, evaluationFailure{Key: key, ErrorCode: codeFlagNotFound,
			ErrorDetails: fmt.Sprintf("flag %q is not in namespace %q", key, s.opts.FlagsNamespace)})
		return
	}
	ev, fail := s.evaluate(key, v)
	if fail != nil {
		writeJSON(w, http.StatusBadRequest, fail)
		return
	}
	writeJSON(w, http.StatusOK, ev)
}

// bulk answers POST /ofrep/v1/evaluate/flags: every live key of the flags
// namespace evaluated, sorted by key, with a strong ETag over the
// namespace's keys and values; 304 with no body when If-None-Match holds
// that ETag. The evaluation is cached while Serve runs (bulkCache). A key that is not valid UTF-8 is left out (JSON cannot name
// it, nor OFREP's providers ask for it). The answer announces the OFREP
// event stream, with the caller's token's ticket in its URL when tok is
// not nil.
func (s *Server) bulk(w http.ResponseWriter, r *http.Request, tok *token) {
	code, details, ok := s.readEvaluationRequest(w, r)
	if !ok {
		return
	}
	if code != "" {
		writeJSON(w, http.StatusBadRequest, bulkFailure{ErrorCode: code, ErrorDetails: details})
		return
	}
	fs, err := s.flagSet()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, generalError{ErrorDetails: err.Error()})
		return
	}
	w.Header().Set("ETag", fs.etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && parseETags(inm).matchWeak(fs.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	es := eventStream{Type: "sse"}
	es.Endpoint.RequestURI = flagEventsPath
	if tok != nil {
		es.Endpoint.RequestURI += "?ticket=" + url.QueryEscape(tok.ticketString())
	}
	writeBulk(w, fs.flags, bulkRest{Metadata: s.flagMetadata(), EventStreams: []eventStream{es}})
}

// refetch is the data of the OFREP event that tells providers to
// evaluate the flags again.
const refetch = "event: message\ndata: {\"type\":\"refetchEvaluation\"}\n\n"

// flagEvents answers GET /ofrep/v1/events, the OFREP event stream: a
// refetchEvaluation event after each change to the flags namespace (a
// reset included; not stale, which changes no flag), one for all the
// changes until it is sent, which waits for the stream's slot of the
// pacer. An event carries no ETag: computing one would read the whole
// namespace for every client at every change, and providers evaluate
// again in any case.
func (s *Server) flagEvents(w http.ResponseWriter, r *http.Request) {
	st, f, cur, done, ok := s.openFeed(w, s.opts.FlagsNamespace)
	if !ok {
		return
	}
	defer done()
	s.follow(r.Context(), st, f, cur, (*feed).refetch)
}
