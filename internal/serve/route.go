package serve

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// kind is what a request's path names.
type kind int

const (
	routeNamespaces kind = iota + 1 // /v1/namespaces
	routeNamespace                  // /v1/namespaces/{ns}
	routeKey                        // /v1/namespaces/{ns}/keys/{key}
	routeEvents                     // /v1/namespaces/{ns}/events
	routeBulk                       // /ofrep/v1/evaluate/flags
	routeFlag                       // /ofrep/v1/evaluate/flags/{key}
	routeFlagEvents                 // /ofrep/v1/events
	routeHistory                    // /v1/namespaces/{ns}/history
	routeRevert                     // /v1/namespaces/{ns}/keys/{key}/revert
	routePage                       // /, the admin page
	routeAsset                      // /ui/{name}, its script, style and icon
	routeLogin                      // /ui/login
	routeLogout                     // /ui/logout
)

// page reports whether k is one of the admin page's routes, which answer
// themselves (page.go) rather than through authorize.
func (k kind) page() bool {
	return k == routePage || k == routeAsset || k == routeLogin || k == routeLogout
}

// route is a parsed request path.
type route struct {
	kind    kind
	ns, key string // unescaped, any bytes
}

// methods returns the methods the route answers, for 405 and Allow.
func (r route) methods() []string {
	switch r.kind {
	case routeNamespaces, routeEvents, routeFlagEvents, routeHistory:
		return []string{http.MethodGet}
	case routeRevert, routeLogin, routeLogout:
		return []string{http.MethodPost}
	case routePage, routeAsset:
		return []string{http.MethodGet, http.MethodHead}
	case routeNamespace:
		return []string{http.MethodGet, http.MethodHead, http.MethodDelete}
	case routeKey:
		return []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete}
	case routeBulk, routeFlag:
		return []string{http.MethodPost}
	}
	return nil
}

// writes reports whether a request of method to r changes state: PUT
// and DELETE anywhere, POST to a revert. (OFREP's POSTs evaluate.)
func (r route) writes(method string) bool {
	switch method {
	case http.MethodPut, http.MethodDelete:
		return true
	case http.MethodPost:
		return r.kind == routeRevert
	}
	return false
}

// routeError is a path the server refuses: status 400 or 404.
type routeError struct {
	code int
	msg  string
}

// parseRoute parses escaped, a request's path as sent (percent-encoded).
// Each segment is unescaped once on its own, so that a name may hold '/'
// (%2F), '%' (%25), spaces and any byte. A segment that is "." or ".."
// as sent is refused rather than resolved: the server has no files, and
// a path that means something else after cleaning is a trick, not a
// name; a name that is "." or ".." is sent as %2E or %2E%2E.
func parseRoute(escaped string) (route, *routeError) {
	rest, ok := strings.CutPrefix(escaped, "/")
	if !ok {
		return route{}, &routeError{http.StatusBadRequest, "the path does not begin with /"}
	}
	raw := strings.Split(rest, "/")
	segs := make([]string, len(raw))
	for i, s := range raw {
		if s == "." || s == ".." {
			return route{}, &routeError{http.StatusBadRequest,
				"a path segment . or .. is not taken; percent-encode a name that is . or .. (%2E, %2E%2E)"}
		}
		u, err := url.PathUnescape(s)
		if err != nil {
			return route{}, &routeError{http.StatusBadRequest, fmt.Sprintf("bad percent-encoding in path segment %d", i+1)}
		}
		segs[i] = u
	}
	// The fixed segments are matched as sent: %76%31 is not v1.
	switch {
	case len(raw) == 1 && raw[0] == "":
		return route{kind: routePage}, nil
	case len(raw) == 2 && raw[0] == "ui":
		switch raw[1] {
		case "login":
			return route{kind: routeLogin}, nil
		case "logout":
			return route{kind: routeLogout}, nil
		}
		if _, ok := assets[raw[1]]; ok {
			return route{kind: routeAsset, key: raw[1]}, nil
		}
	case len(raw) >= 2 && raw[0] == "v1" && raw[1] == "namespaces":
		switch {
		case len(segs) == 2:
			return route{kind: routeNamespaces}, nil
		case len(segs) == 3:
			return route{kind: routeNamespace, ns: segs[2]}, nil
		case len(segs) == 4 && raw[3] == "events":
			return route{kind: routeEvents, ns: segs[2]}, nil
		case len(segs) == 4 && raw[3] == "history":
			return route{kind: routeHistory, ns: segs[2]}, nil
		case len(segs) == 5 && raw[3] == "keys":
			return route{kind: routeKey, ns: segs[2], key: segs[4]}, nil
		case len(segs) == 6 && raw[3] == "keys" && raw[5] == "revert":
			return route{kind: routeRevert, ns: segs[2], key: segs[4]}, nil
		}
	case len(raw) >= 4 && raw[0] == "ofrep" && raw[1] == "v1" && raw[2] == "evaluate" && raw[3] == "flags":
		if len(raw) == 4 {
			return route{kind: routeBulk}, nil
		}
		// OFREP clients put the flag's key in the path as it is, without
		// escaping it: a key holding '/' spans segments.
		return route{kind: routeFlag, key: strings.Join(segs[4:], "/")}, nil
	case len(raw) == 3 && raw[0] == "ofrep" && raw[1] == "v1" && raw[2] == "events":
		return route{kind: routeFlagEvents}, nil
	}
	return route{}, &routeError{http.StatusNotFound, "no such endpoint"}
}
