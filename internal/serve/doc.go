// Package serve is an [opstate.Store] over HTTP: the OpenFeature Remote
// Evaluation Protocol (OFREP) for feature-flag clients in any language,
// a key-value API with a live event stream and change history, an admin
// page, and bearer tokens. It is the server of the opstate command's
// serve verb, built on net/http alone.
//
// [New] returns a [Server], an http.Handler; [Server.Serve] runs it on a
// listener with the limits of its [Options] until its context ends.
//
// # Endpoints
//
// OFREP (the protocol's service/openapi.yaml, v0.3.0), the flags being
// the keys of one namespace, Options.FlagsNamespace ("flags"):
//
//	POST /ofrep/v1/evaluate/flags/{key}  one flag: 200, 400 PARSE_ERROR or INVALID_CONTEXT, 404 FLAG_NOT_FOUND, 500
//	POST /ofrep/v1/evaluate/flags        every flag, with an ETag; If-None-Match: 304
//	GET  /ofrep/v1/events                Server-Sent Events: refetchEvaluation at each change
//
// The key-value API; names are percent-encoded path segments, any bytes:
//
//	GET    /v1/namespaces                  {"NS": LIVE_KEYS, ...}
//	GET    /v1/namespaces/{ns}             {"KEY": "VALUE", ...}
//	GET    /v1/namespaces/{ns}?expiry=1    {"KEY": {"value": "VALUE", "expires": "TIME"}, ...}; no expires: never
//	DELETE /v1/namespaces/{ns}             every key of ns
//	GET    /v1/namespaces/{ns}/keys/{key}  the value, byte for byte, with an ETag
//	PUT    /v1/namespaces/{ns}/keys/{key}  the body is the value; ?ttl=DURATION
//	DELETE /v1/namespaces/{ns}/keys/{key}
//	GET    /v1/namespaces/{ns}/events      Server-Sent Events: each change
//	GET    /v1/namespaces/{ns}/history     {"changes":[...]}, newest first; ?key=&limit=&before=
//	POST   /v1/namespaces/{ns}/keys/{key}/revert?seq=N  back to the state after change N
//
// The admin page (Options.UI), its files and its login:
//
//	GET    /                 the page, or the login form
//	GET    /ui/{file}        app.js, app.css, icon.svg
//	POST   /ui/login         token=SECRET: a session cookie, 303 to /
//	POST   /ui/logout        ends the session
//
// Errors of the key-value API are {"error": "..."}: 400 for bad input
// (an empty name, a bad ttl, a bad header), 401 and 403, 404, 405, 412
// for a failed precondition, 413 for a body over Options.MaxValueBytes,
// 503 when the Store is busy (ErrBusy) or closed, 507 for a full disk
// (ErrDiskFull), 500 otherwise; the history's 404 for a namespace that
// keeps none, 409 for a revert the key changed since. docs/serve.md in
// the repository shows each with curl.
//
// # Admin page
//
// With Options.UI, / serves a page (internal/serve/ui, embedded: HTML,
// CSS and a script, no build step, nothing from elsewhere) that lists the
// namespaces, a namespace's keys with switches for true and false,
// creates, edits (with a TTL) and deletes keys, follows the namespace's
// event stream, and shows and reverts history. With tokens it asks for
// a secret first and keeps a session (session.go): the cookie is random,
// HttpOnly, SameSite=Strict, Path=/, Secure over TLS; the session admits
// as its token does now, and ends when the token leaves the tokens, on
// logout, after 12 hours idle, or past Options.MaxSessions (the least
// recently used). The page calls the key-value API with the cookie.
//
// # Guarantees
//
//   - A PUT or DELETE answered 2xx is committed as the Store's own write
//     is ([opstate.Store.Set]): it survives a crash of the process.
//   - A value is stored and served byte for byte, whatever its bytes, and
//     so are names, percent-encoded in the path ('/' as %2F, '%' as %25).
//     A path segment "." or ".." as sent, not encoded, is refused (400)
//     rather than resolved.
//   - A key's ETag is the SHA-256 of its value. If-None-Match: * on PUT
//     is [opstate.Store.SetIfAbsent]; If-Match: "ETAG" on PUT is
//     [opstate.Store.CompareAndSwap] of the value the ETag tags, and on
//     DELETE [opstate.Store.CompareAndDelete]: the write happens only if
//     the value is still that one when it commits, else 412 and nothing
//     changes.
//   - The bulk evaluation's ETag is the SHA-256 of the namespace's keys
//     and values: it changes when and only when a flag does (a key set,
//     deleted or expired). While [Server.Serve] runs, the evaluation is
//     cached: a flag written through the server is in the next answer, a
//     flag's change or expiry as soon as the Store serves it, a new flag
//     written to the Store otherwise once the Store's Watch reports it.
//   - An event stream sends each change that [opstate.Store.Watch]
//     reports, in order; a heartbeat comment whenever nothing was sent
//     for Options.Heartbeat; and, when the Store closes or the server
//     shuts down, an "end" event saying which, before the stream ends.
//     The streams of a namespace share one Watch; each change is encoded
//     once and kept, the latest of each key, for each stream to copy.
//   - Many streams never slow writers much: their sends are paced to take
//     about half a processor together. A stream sends at once when few
//     others are sending; when many are (thousands of streams of a
//     namespace that changes), each waits for its turn, and then sends
//     every change since, coalesced per key, in one write.
//   - A slow reader never slows writers: what waits for it is coalesced
//     per key (past [opstate.MaxPendingEvents] keys, or 16 MiB, a reset
//     event in their place, after which the client re-reads the
//     namespace), and a write that cannot complete within
//     Options.WriteTimeout disconnects the client. Nothing is buffered
//     for a client without bound.
//   - With tokens, every request but a CORS preflight, the admin page's
//     files and its login form needs a token's secret in a header or a
//     session's cookie; secrets are compared in time that does not
//     depend on the stored tokens (see [Tokens]), and no answer quotes a
//     secret.
//   - A request that changes state (PUT, DELETE, a revert, the login and
//     logout) without a token in a header is refused (403) when another
//     site's page sent it (Sec-Fetch-Site, else Origin against Host:
//     http.CrossOriginProtection; the CORS origins are trusted); with a
//     session cookie it also needs the session's X-CSRF-Token. A request
//     with a token in a header is taken as before.
//   - Writes are recorded, in the namespaces that keep history, as the
//     name of the token that made them (header or session); without
//     tokens, as the Store's Options.Actor.
//   - A revert with If-Match (the value the client saw), or with
//     If-None-Match "*", is a conditional write against that: it never
//     overwrites a change made since (412). Without, it is
//     [opstate.Store.Revert].
//   - The admin page's answers carry a Content-Security-Policy that
//     admits the page's own script and style files alone (no inline
//     script or style, no eval) and no framing, and nosniff; its script
//     puts names and values in the page as text, never as markup.
//   - Without CORSOrigins no answer has a CORS header.
//
// # Caveats
//
//   - No targeting: the evaluation context is checked for form (an
//     object, its targetingKey a string) and otherwise ignored; every
//     evaluation's reason is STATIC, its metadata the namespace.
//   - No TLS: put the server behind a proxy that terminates TLS. Tokens
//     travel in headers, readable by anyone on the path without it.
//   - Tokens are for the whole Store: a read token reads every namespace,
//     a write token writes every one.
//   - The admin page reads a key's expiry and last change from the
//     namespace's history (its latest 1000 changes): without history it
//     shows neither. Anyone with a token can log in MaxSessions times
//     and so end the others' sessions.
//   - The OFREP event stream is announced with a path alone, which the
//     provider joins to its own origin: behind a proxy, serve it at the
//     root of its origin. Browsers' EventSource sends no header, so with
//     tokens the announced URL carries a ticket: a secret derived from the
//     token's hash that admits to that stream alone, valid for as long as
//     the token is in the file. Proxies that log query strings log it.
//   - The key-value listing reads the whole namespace from the database
//     for each request, and so does the bulk evaluation when the Server
//     is used as an http.Handler without Serve.
//   - An event stream may send a change made just before it opened,
//     which its Watch had not reported yet; the OFREP stream sends one
//     refetchEvaluation for all the changes until its turn to send.
//   - Each stream and each connection holds memory and a file descriptor
//     (see Options.MaxStreams and Options.MaxConns).
//   - Once a bulk evaluation has come, Serve holds a Watch of the flags
//     namespace until it returns (the bulk cache's): a Store on SQLite
//     then checks for others' writes every SyncInterval even while
//     nothing is read, as it does while any event stream is open.
//   - A name or value that is not valid UTF-8 cannot appear in a JSON
//     answer exactly: the listings refuse (500, naming it) rather than
//     alter it; events carry it base64-encoded in a field ending in
//     "_base64"; the bulk evaluation leaves out such a flag key, and a
//     flag whose value is neither JSON nor UTF-8 evaluates to
//     PARSE_ERROR.
package serve
