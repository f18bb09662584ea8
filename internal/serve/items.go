package serve

import (
	"errors"
	"net/http"

	"github.com/d8da9184/opstate"
)

// item is one key of the answer of items.
type item struct {
	Value string `json:"value"`
	// Expires is RFC 3339 with milliseconds, UTC; absent when the key
	// never expires.
	Expires string `json:"expires,omitempty"`
}

// items answers GET /v1/namespaces/{ns}?expiry=1: {"KEY": {"value":
// "VALUE", "expires": "TIME"}, ...} for the live keys of ns, expires
// (RFC 3339 with milliseconds, UTC, the Store's clock) left out for a
// key that never expires. 501 over a backend that cannot list expiries.
func (s *Server) items(w http.ResponseWriter, r *http.Request, ns string) {
	if q := r.URL.Query(); len(q) != 1 || len(q["expiry"]) != 1 || q.Get("expiry") != "1" {
		writeError(w, http.StatusBadRequest, "this endpoint takes no query parameters but expiry=1")
		return
	}
	m, err := s.store.ListItems(ns)
	if err != nil {
		code := storeStatus(err)
		if errors.Is(err, opstate.ErrUnsupported) {
			code = http.StatusNotImplemented
		}
		writeError(w, code, err.Error())
		return
	}
	out := make(map[string]item, len(m))
	for k, it := range m {
		if !jsonExact(w, ns, k, it.Value) {
			return
		}
		var exp string
		if !it.Expires.IsZero() {
			exp = it.Expires.UTC().Format(timeLayout)
		}
		out[k] = item{Value: it.Value, Expires: exp}
	}
	writeJSON(w, http.StatusOK, out)
}
