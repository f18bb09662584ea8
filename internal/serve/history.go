package serve

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/d8da9184/opstate"
)

// Bounds of the history endpoint's limit.
const (
	defaultHistoryLimit = 100
	maxHistoryLimit     = 1000
)

// history answers GET /v1/namespaces/{ns}/history?key=&limit=&before=:
// {"changes":[CHANGE, ...]}, newest first, of the key or (without key)
// the whole namespace; limit (1 to 1000, default 100) bounds their
// number, before=SEQ takes the changes numbered below SEQ (the next
// page). 404 when the namespace keeps no history.
func (s *Server) history(w http.ResponseWriter, r *http.Request, ns string) {
	key, limit, before := "", defaultHistoryLimit, int64(0)
	for name, vs := range r.URL.Query() {
		if len(vs) != 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("query parameter %s is given %d times", strconv.Quote(name), len(vs)))
			return
		}
		v := vs[0]
		switch name {
		case "key":
			if v == "" {
				writeError(w, http.StatusBadRequest, "key is empty: leave it out for the whole namespace")
				return
			}
			key = v
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxHistoryLimit {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %s is not a number from 1 to %d", strconv.Quote(v), maxHistoryLimit))
				return
			}
			limit = n
		case "before":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("before %s is not a positive sequence number", strconv.Quote(v)))
				return
			}
			before = n
		default:
			writeError(w, http.StatusBadRequest, "history takes the query parameters key, limit and before")
			return
		}
	}
	var (
		cs  []opstate.Change
		err error
	)
	if before > 0 {
		cs, err = s.store.HistoryBefore(r.Context(), ns, key, before, limit)
	} else {
		cs, err = s.store.History(r.Context(), ns, key, limit)
	}
	if err != nil {
		writeHistoryError(w, ns, err)
		return
	}
	b := append(make([]byte, 0, 256*len(cs)+16), `{"changes":[`...)
	for i, c := range cs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendChange(b, c)
	}
	b = append(b, "]}\n"...)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// appendChange appends the JSON of one change to b: seq, time (RFC 3339,
// UTC, the database's clock), namespace, key, op ("set", "delete",
// "expire"), existed; before and before_expires when the key had a
// value; after (set) and expires when it has one; actor ("" for a plain
// SQL edit). A string that is not valid UTF-8 goes base64-encoded in the
// field of its name with "_base64" added, as in events.
func appendChange(b []byte, c opstate.Change) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, c.Seq, 10)
	b = appendTime(b, "time", c.Time)
	b = appendField(b, "namespace", c.Namespace)
	b = appendField(b, "key", c.Key)
	b = append(b, `,"op":"`...)
	b = append(b, c.Op.String()...)
	b = append(b, `","existed":`...)
	b = strconv.AppendBool(b, c.Existed)
	if c.Existed {
		b = appendField(b, "before", c.Before)
		if !c.BeforeExpires.IsZero() {
			b = appendTime(b, "before_expires", c.BeforeExpires)
		}
	}
	if c.Op == opstate.OpSet {
		b = appendField(b, "after", c.After)
		if !c.Expires.IsZero() {
			b = appendTime(b, "expires", c.Expires)
		}
	}
	b = appendField(b, "actor", c.Actor)
	return append(b, '}')
}

// timeLayout is how the API writes a time: RFC 3339 with milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// appendTime appends ,"name":"TIME" to b, t in RFC 3339 with
// milliseconds, UTC.
func appendTime(b []byte, name string, t time.Time) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, `":"`...)
	b = t.UTC().AppendFormat(b, timeLayout)
	return append(b, '"')
}

// historyStatus returns the HTTP status of an error of History or
// Revert: 404 for a namespace without history or a change that is not
// the key's, 409 for a revert the key changed since, 501 for a backend
// without history, else as storeStatus.
func historyStatus(err error) int {
	switch {
	case errors.Is(err, opstate.ErrNoHistory), errors.Is(err, opstate.ErrNoChange):
		return http.StatusNotFound
	case errors.Is(err, opstate.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, opstate.ErrUnsupported):
		return http.StatusNotImplemented
	}
	return storeStatus(err)
}

// writeHistoryError answers a request whose History or Revert failed.
func writeHistoryError(w http.ResponseWriter, ns string, err error) {
	msg := err.Error()
	if errors.Is(err, opstate.ErrNoHistory) {
		msg += fmt.Sprintf(" (opstate history-keep %s N turns it on)", strconv.Quote(ns))
	}
	writeError(w, historyStatus(err), msg)
}
