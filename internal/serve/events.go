package serve

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"unicode/utf8"

	"github.com/d8da9184/opstate"
)

// eventData is the JSON data of a key-value event: the fields of an
// [opstate.Event], each string that is not valid UTF-8 (which JSON cannot
// hold exactly) sent instead, base64-encoded, in the field of its name
// with "_base64" added.
type eventData struct {
	Op              string  `json:"op"` // set, delete, expire, reset or stale
	Namespace       string  `json:"namespace,omitempty"`
	NamespaceBase64 string  `json:"namespace_base64,omitempty"`
	Key             string  `json:"key,omitempty"` // absent for reset and stale
	KeyBase64       string  `json:"key_base64,omitempty"`
	Value           *string `json:"value,omitempty"` // set only; "" included
	ValueBase64     *string `json:"value_base64,omitempty"`
}

// newEventData returns the JSON form of ev.
func newEventData(ev opstate.Event) eventData {
	d := eventData{Op: ev.Op.String()}
	d.Namespace, d.NamespaceBase64 = exact(ev.Namespace)
	if ev.Op != opstate.OpReset && ev.Op != opstate.OpStale {
		d.Key, d.KeyBase64 = exact(ev.Key)
	}
	if ev.Op == opstate.OpSet {
		v, b := exact(ev.Value)
		if utf8.ValidString(ev.Value) {
			d.Value = &v
		} else {
			d.ValueBase64 = &b
		}
	}
	return d
}

// exact returns s as it is when it is valid UTF-8, else its base64.
func exact(s string) (plain, b64 string) {
	if utf8.ValidString(s) {
		return s, ""
	}
	return "", base64.StdEncoding.EncodeToString([]byte(s))
}

// events answers GET /v1/namespaces/{ns}/events: a Server-Sent Events
// stream of the changes to ns, one event a change, its data the JSON of
// eventData, in the order and with the coalescing of [opstate.Store.Watch].
func (s *Server) events(w http.ResponseWriter, r *http.Request, ns string) {
	if !noQuery(w, r) {
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	st, ch, done, ok := s.openStream(ctx, w, r, ns)
	if !ok {
		return
	}
	defer done()
	s.pump(ctx, st, ch, func(b *bytes.Buffer, ev opstate.Event) {
		b.WriteString("data: ")
		enc := json.NewEncoder(b)
		enc.SetEscapeHTML(false)
		enc.Encode(newEventData(ev)) // never fails: strings are valid UTF-8 by now
		b.WriteString("\n")          // Encode ended the data line; this ends the event
	})
}

// noQuery answers 400 and returns false for a request with a query, on an
// endpoint that takes none: a parameter is never silently ignored.
func noQuery(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.RawQuery != "" {
		writeError(w, http.StatusBadRequest, "this endpoint takes no query parameters")
		return false
	}
	return true
}
