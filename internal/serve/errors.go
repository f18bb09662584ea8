package serve

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/d8da9184/opstate"
)

// errorBody is the body of every error answer of the key-value API:
// {"error": "..."}.
type errorBody struct {
	Error string `json:"error"`
}

// writeJSON writes v as the JSON body of an answer with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // v is always one of this package's types
		code = http.StatusInternalServerError
		b = []byte(`{"error":"serve: encode the answer"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// writeError writes {"error": msg} with status code. msg never holds a
// credential: the callers build it from names and the Store's errors.
func writeError(w http.ResponseWriter, code int, msg string) {
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, code, errorBody{Error: msg})
}

// storeStatus returns the HTTP status of an error from the Store: 400 for
// bad input, 503 for a lock held too long or a Store closing (try again),
// 507 for a full disk, 500 for anything else.
func storeStatus(err error) int {
	switch {
	case errors.Is(err, opstate.ErrEmptyName), errors.Is(err, opstate.ErrInvalidTTL),
		errors.Is(err, opstate.ErrInvalidText):
		return http.StatusBadRequest
	case errors.Is(err, opstate.ErrBusy), errors.Is(err, opstate.ErrClosed):
		return http.StatusServiceUnavailable
	case errors.Is(err, opstate.ErrDiskFull):
		return http.StatusInsufficientStorage
	}
	return http.StatusInternalServerError
}

// writeStoreError answers a request whose call of the Store failed with
// err: its status by storeStatus, its message the Store's (which names
// the call, namespace and key, and nothing secret).
func writeStoreError(w http.ResponseWriter, err error) {
	writeError(w, storeStatus(err), err.Error())
}
