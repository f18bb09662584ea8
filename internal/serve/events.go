package serve

import (
	"encoding/base64"
	"net/http"
	"unicode/utf8"

	"github.com/d8da9184/opstate"
)

// appendEvent appends the JSON data of a key-value event to b: the
// fields of an [opstate.Event], {"op":"set","namespace":"NS","key":"KEY",
// "value":"VALUE"}, key absent for reset and stale, value present for set
// only ("" included). A string that is not valid UTF-8, which JSON cannot
// hold exactly, goes instead, base64-encoded, in the field of its name
// with "_base64" added. Strings are escaped as encoding/json escapes them
// with HTML escaping off (TestAppendEvent holds it to that). Written by
// hand: it runs for every change of a followed namespace, on the
// goroutine that feeds the namespace's streams, and encoding/json's
// reflection cost several times as much.
func appendEvent(b []byte, ev opstate.Event) []byte {
	b = append(b, `{"op":"`...)
	b = append(b, ev.Op.String()...)
	b = append(b, '"')
	if ev.Namespace != "" {
		b = appendField(b, "namespace", ev.Namespace)
	}
	if ev.Op != opstate.OpReset && ev.Op != opstate.OpStale && ev.Key != "" {
		b = appendField(b, "key", ev.Key)
	}
	if ev.Op == opstate.OpSet {
		b = appendField(b, "value", ev.Value)
	}
	return append(b, '}')
}

// appendField appends ,"name":"s" to b, or ,"name_base64":"BASE64" when
// s is not valid UTF-8.
func appendField(b []byte, name, s string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	if !utf8.ValidString(s) {
		b = append(b, `_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, []byte(s))
		return append(b, '"')
	}
	b = append(b, '"', ':')
	return appendJSONString(b, s)
}

// appendJSONString appends s, valid UTF-8, to b as a JSON string: '"' and
// '\' escaped, control characters as \n, \r, \t, \b, \f or \u00XX,
// U+2028 and U+2029 as \u2028 and \u2029 (which JavaScript once took
// for line ends), everything else as it is.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			start = i + size
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// events answers GET /v1/namespaces/{ns}/events: a Server-Sent Events
// stream of the changes to ns, one event a change, its data the JSON of
// appendEvent, in the order of [opstate.Store.Watch], coalesced per key
// while the stream is behind (feed).
func (s *Server) events(w http.ResponseWriter, r *http.Request, ns string) {
	if !noQuery(w, r) {
		return
	}
	st, f, cur, done, ok := s.openFeed(w, ns)
	if !ok {
		return
	}
	defer done()
	s.follow(r.Context(), st, f, cur, (*feed).take)
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
