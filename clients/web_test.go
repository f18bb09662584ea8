package clients

import (
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// pageOrigin is the origin of the page the web provider runs in, given
// to opstate serve with -cors.
const pageOrigin = "https://app.example.test"

// pollInterval is the web provider's poll interval, in milliseconds.
const pollInterval = "100"

// isBulk matches the page's bulk evaluations.
func isBulk(l line) bool {
	return l.Kind == "fetch" && l.Method == http.MethodPost && l.Path == "/ofrep/v1/evaluate/flags"
}

// page starts web.mjs against srv with the token secret, as a page of
// origin, with change detection mode (polling, sse) and a poll every
// interval milliseconds (0: none).
func (e *clientEnv) page(t *testing.T, srv *server, secret, origin, mode, interval string) *script {
	t.Helper()
	return e.node(t, "web.mjs", "OPSTATE_URL="+srv.url, "OPSTATE_TOKEN="+secret, "PAGE_ORIGIN="+origin,
		"CHANGE_DETECTION="+mode, "POLL_INTERVAL_MS="+interval)
}

// webFlags stores the flags the web tests evaluate, with opstate set.
func webFlags(t *testing.T, e *clientEnv, db string) {
	t.Helper()
	for _, kv := range [][2]string{
		{"dark_mode", "true"},
		{"banner", `"text"`},
		{"retries", "3"},
		{"limits", `{"a":1}`},
		{"team/dark mode ü", "true"},
	} {
		e.opstate(t, db, "set", "flags", kv[0], kv[1])
	}
}

// TestWebProvider runs the OpenFeature web SDK with the OFREP web provider
// (web.mjs) as a page of pageOrigin, against opstate serve -cors
// pageOrigin with tokens, polling: every request passes its CORS
// preflight and is allowed; the first bulk evaluation is 200 with an
// ETag the page can read, and its flags evaluate as stored (a missing
// one FLAG_NOT_FOUND, another type TYPE_MISMATCH); each poll after it
// sends that ETag in If-None-Match and is answered 304 while nothing
// changed (and the server answers 304 to that ETag to anyone); after
// opstate set flips a flag, a poll is answered 200 with a new ETag, the
// page hears the configuration change naming the flag and evaluates it
// flipped, and polls with the new ETag are 304 again.
func TestWebProvider(t *testing.T) {
	e := setup(t)
	db := filepath.Join(t.TempDir(), "state.db")
	reader, readLine := e.token(t, "page", "read")
	webFlags(t, e, db)
	srv := e.serve(t, db, "-tokens", tokenFile(t, readLine), "-cors", pageOrigin)

	page := e.page(t, srv, reader, pageOrigin, "polling", pollInterval)
	if r := page.ready(t); !r.OK {
		t.Fatalf("web provider not ready: %v\n%s", r, page.stderr)
	}
	page.check(t, []evalCase{
		{"boolean", "dark_mode", false, details{Value: true, Reason: "STATIC", FlagMetadata: staticFlags}},
		{"string", "banner", "none", details{Value: "text", Reason: "STATIC", FlagMetadata: staticFlags}},
		{"number", "retries", 0, details{Value: 3.0, Reason: "STATIC", FlagMetadata: staticFlags}},
		{"object", "limits", map[string]any{}, details{Value: map[string]any{"a": 1.0}, Reason: "STATIC", FlagMetadata: staticFlags}},
		{"boolean", "team/dark mode ü", false, details{Value: true, Reason: "STATIC", FlagMetadata: staticFlags}},
		{"boolean", "missing", true, details{Value: true, Reason: "ERROR", ErrorCode: "FLAG_NOT_FOUND"}},
		{"boolean", "banner", false, details{Value: false, Reason: "ERROR", ErrorCode: "TYPE_MISMATCH"}},
	})

	// The first bulk evaluation, then three polls: each sends its ETag
	// and is answered 304. A preflight refused ends the polls at once.
	var etag string
	i := -1
	for n := range 4 {
		var l line
		i, l = page.await(t, "bulk evaluation or refused preflight", i+1, func(l line) bool {
			return isBulk(l) || (l.Kind == "preflight" && len(l.Problems) > 0)
		})
		switch {
		case l.Kind == "preflight":
			t.Fatalf("preflight refused: %v", l)
		case n == 0 && (l.Status != http.StatusOK || l.IfNoneMatch != "" || l.ETag == ""):
			t.Fatalf("first bulk evaluation: %v; want 200 with an ETag the page reads, no If-None-Match", l)
		case n == 0:
			etag = l.ETag
		case l.Status != http.StatusNotModified || l.IfNoneMatch != etag:
			t.Fatalf("poll before any change: %v; want If-None-Match %s answered 304", l, etag)
		}
	}
	if status, _ := srv.bulk(t, reader, etag); status != http.StatusNotModified {
		t.Errorf("bulk evaluation with If-None-Match %s (the page's ETag) = %d; want 304", etag, status)
	}

	flip := page.count()
	e.opstate(t, db, "set", "flags", "dark_mode", "false")
	page.await(t, "configuration change naming dark_mode", flip, func(l line) bool {
		return l.Kind == "changed" && slices.Contains(l.Flags, "dark_mode")
	})
	page.check(t, []evalCase{
		{"boolean", "dark_mode", true, details{Value: false, Reason: "STATIC", FlagMetadata: staticFlags}},
	})
	j, changed := page.await(t, "poll answered 200 after the flip", flip, func(l line) bool { return isBulk(l) && l.Status == http.StatusOK })
	if changed.IfNoneMatch != etag || changed.ETag == "" || changed.ETag == etag {
		t.Errorf("poll that saw the flip: %v; want If-None-Match %s answered 200 with a new ETag", changed, etag)
	}
	page.await(t, "poll with the new ETag answered 304", j+1, func(l line) bool {
		return isBulk(l) && l.IfNoneMatch == changed.ETag && l.Status == http.StatusNotModified
	})
	if status, now := srv.bulk(t, reader, etag); status != http.StatusOK || now != changed.ETag {
		t.Errorf("bulk evaluation with the old ETag = %d, ETag %s; want 200, %s", status, now, changed.ETag)
	}

	// Each request was preflighted, allowed, and the page could read its
	// answer; the polls' preflights asked for If-None-Match.
	var preflights, polls int
	for _, l := range page.snapshot() {
		switch l.Kind {
		case "preflight":
			preflights++
			if l.Status != http.StatusNoContent || l.AllowOrigin != pageOrigin || len(l.Problems) > 0 {
				t.Errorf("preflight: %v; want 204 allowing %s", l, pageOrigin)
			}
			if strings.Contains(l.RequestHeaders, "if-none-match") {
				polls++
			}
		case "fetch":
			if !l.Allowed || l.AllowOrigin != pageOrigin {
				t.Errorf("request: %v; want its answer allowed to %s", l, pageOrigin)
			}
		}
	}
	if preflights == 0 || polls == 0 {
		t.Errorf("%d preflights, %d of them for polls with If-None-Match; want some of each", preflights, polls)
	}
}

// TestWebProviderRefused runs the web provider where it must not be
// served: as a page of an origin serve was not given with -cors (the
// preflight allows nothing, the request is never sent), and with a wrong
// token (the 401 reaches the page, as it carries the CORS headers, and
// the provider fails for good). In both the provider does not become
// ready and evaluations give the default.
func TestWebProviderRefused(t *testing.T) {
	e := setup(t)
	db := filepath.Join(t.TempDir(), "state.db")
	reader, readLine := e.token(t, "page", "read")
	webFlags(t, e, db)
	srv := e.serve(t, db, "-tokens", tokenFile(t, readLine), "-cors", pageOrigin)

	for _, tt := range []struct {
		name, origin, token string
		error, cause        string // the provider's error and its cause
		errorCode           string // of an evaluation then: the provider holds no flag
		sent                bool   // the bulk evaluation was sent (preflight passed)
		status              int    // its answer
	}{
		{"origin not allowed", "https://other.example.test", reader, "OFREPApiFetchError", "TypeError", "FLAG_NOT_FOUND", false, 0},
		{"wrong token", pageOrigin, "not-" + reader, "ProviderFatalError", "OFREPApiUnauthorizedError", "PROVIDER_FATAL", true, http.StatusUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			page := e.page(t, srv, tt.token, tt.origin, "polling", pollInterval)
			r := page.ready(t)
			if r.OK || r.Error != tt.error || r.Cause != tt.cause {
				t.Errorf("ready: %v; want not ready, error %s caused by %s", r, tt.error, tt.cause)
			}
			page.check(t, []evalCase{
				{"boolean", "dark_mode", false, details{Value: false, Reason: "ERROR", ErrorCode: tt.errorCode}},
			})
			var sent []line
			refused := false
			for _, l := range page.snapshot() {
				if isBulk(l) {
					sent = append(sent, l)
				}
				if l.Kind == "preflight" && len(l.Problems) > 0 {
					refused = true
				}
			}
			switch {
			case !tt.sent && (len(sent) > 0 || !refused):
				t.Errorf("bulk evaluations sent: %v, preflight refused: %v; want none sent, the preflight refused", sent, refused)
			case tt.sent && (len(sent) != 1 || sent[0].Status != tt.status || !sent[0].Allowed):
				t.Errorf("bulk evaluations: %v; want one, answered %d with CORS headers", sent, tt.status)
			}
		})
	}
}

// TestWebProviderEventStream runs the web provider as a page of
// pageOrigin, as TestWebProvider does, but following the event stream
// that the bulk evaluation announces, without polling: the stream, which
// a browser's EventSource opens with no header of the page's (the ticket
// in the announced URL admits it), is answered 200 and allowed to the
// page; after opstate set flips a flag, the provider, told by the
// stream, evaluates again (If-None-Match with the first ETag, answered
// 200 with a new one), the page hears the change naming the flag and
// evaluates it flipped. Before the flip, the first bulk evaluation was
// the only one.
func TestWebProviderEventStream(t *testing.T) {
	e := setup(t)
	db := filepath.Join(t.TempDir(), "state.db")
	reader, readLine := e.token(t, "page", "read")
	webFlags(t, e, db)
	srv := e.serve(t, db, "-tokens", tokenFile(t, readLine), "-cors", pageOrigin)

	page := e.page(t, srv, reader, pageOrigin, "sse", "0")
	if r := page.ready(t); !r.OK {
		t.Fatalf("web provider not ready: %v\n%s", r, page.stderr)
	}
	page.check(t, []evalCase{
		{"boolean", "dark_mode", false, details{Value: true, Reason: "STATIC", FlagMetadata: staticFlags}},
	})
	_, first := page.await(t, "bulk evaluation", 0, isBulk)
	if first.Status != http.StatusOK || first.ETag == "" {
		t.Fatalf("first bulk evaluation: %v; want 200 with an ETag the page reads", first)
	}
	// The server answers the stream's headers once its Watch is set: every
	// change after this line reaches the stream.
	_, stream := page.await(t, "event stream's answer", 0, func(l line) bool {
		return l.Kind == "fetch" && l.Method == http.MethodGet && l.Path == "/ofrep/v1/events"
	})
	if stream.Status != http.StatusOK || !stream.Allowed {
		t.Fatalf("event stream: %v; want 200, allowed to %s", stream, pageOrigin)
	}

	flip := page.count()
	e.opstate(t, db, "set", "flags", "dark_mode", "false")
	page.await(t, "configuration change naming dark_mode", flip, func(l line) bool {
		return l.Kind == "changed" && slices.Contains(l.Flags, "dark_mode")
	})
	page.check(t, []evalCase{
		{"boolean", "dark_mode", true, details{Value: false, Reason: "STATIC", FlagMetadata: staticFlags}},
	})
	lines := page.snapshot()
	var before int
	for _, l := range lines[:flip] {
		if isBulk(l) {
			before++
		}
	}
	if before != 1 {
		t.Errorf("%d bulk evaluations before the flip; want 1 (no polling)", before)
	}
	_, again := page.await(t, "bulk evaluation after the flip", flip, isBulk)
	if again.Status != http.StatusOK || again.IfNoneMatch != first.ETag || again.ETag == "" || again.ETag == first.ETag {
		t.Errorf("bulk evaluation after the flip: %v; want If-None-Match %s answered 200 with a new ETag", again, first.ETag)
	}
}
