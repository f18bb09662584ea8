package clients

import (
	"path/filepath"
	"testing"
)

// staticFlags is the metadata of every evaluation that succeeds: the
// namespace the flags are the keys of.
var staticFlags = map[string]any{"namespace": "flags"}

// TestServerSDK evaluates flags through the OpenFeature server SDK for
// Node and its OFREP provider (server-sdk.mjs), against opstate serve
// with a token file, the client holding a read token: a flag of each
// type, stored with opstate set or a PUT of the key-value API, is its
// stored JSON with reason STATIC; a missing flag is the default with
// FLAG_NOT_FOUND; a flag asked for as another type is the default with
// TYPE_MISMATCH; a key with '/', a space and a non-ASCII letter, which
// the provider sends unencoded, is found; a flag flipped with opstate set, another process, is
// served by the next evaluation once the server's Store has seen the
// change; a wrong token gets the default and the provider's
// unauthorized error.
func TestServerSDK(t *testing.T) {
	e := setup(t)
	db := filepath.Join(t.TempDir(), "state.db")
	reader, readLine := e.token(t, "reader", "read")
	writer, writeLine := e.token(t, "writer", "write")
	for _, kv := range [][2]string{
		{"dark_mode", "true"},
		{"banner", `"text"`},
		{"plain", "text"}, // not JSON: the string itself
		{"retries", "3"},
		{"team/dark mode ü", "true"}, // the provider puts the key in the path unencoded
	} {
		e.opstate(t, db, "set", "flags", kv[0], kv[1])
	}
	srv := e.serve(t, db, "-tokens", tokenFile(t, readLine, writeLine))
	srv.put(t, writer, "flags", "ratio", "2.5")
	srv.put(t, writer, "flags", "limits", `{"a":1}`)

	sdk := e.node(t, "server-sdk.mjs", "OPSTATE_URL="+srv.url, "OPSTATE_TOKEN="+reader)
	sdk.ready(t)
	sdk.check(t, []evalCase{
		{"boolean", "dark_mode", false, details{Value: true, Reason: "STATIC", FlagMetadata: staticFlags}},
		{"string", "banner", "none", details{Value: "text", Reason: "STATIC", FlagMetadata: staticFlags}},
		{"string", "plain", "none", details{Value: "text", Reason: "STATIC", FlagMetadata: staticFlags}},
		{"number", "retries", 0, details{Value: 3.0, Reason: "STATIC", FlagMetadata: staticFlags}},
		{"number", "ratio", 0, details{Value: 2.5, Reason: "STATIC", FlagMetadata: staticFlags}},
		{"object", "limits", map[string]any{}, details{Value: map[string]any{"a": 1.0}, Reason: "STATIC", FlagMetadata: staticFlags}},
		{"boolean", "team/dark mode ü", false, details{Value: true, Reason: "STATIC", FlagMetadata: staticFlags}},
		{"boolean", "missing", true, details{Value: true, Reason: "ERROR", ErrorCode: "FLAG_NOT_FOUND", ErrorName: "FlagNotFoundError"}},
		{"boolean", "banner", false, details{Value: false, Reason: "ERROR", ErrorCode: "TYPE_MISMATCH", ErrorName: "TypeMismatchError"}},
		{"number", "dark_mode", 7, details{Value: 7.0, Reason: "ERROR", ErrorCode: "TYPE_MISMATCH"}},
		{"object", "retries", map[string]any{"d": true}, details{Value: map[string]any{"d": true}, Reason: "ERROR", ErrorCode: "TYPE_MISMATCH"}},
	})

	// The flip: once the server's event stream reports the command's
	// write, its Store serves it, and the next evaluation must too (the
	// provider keeps no cache).
	flags := srv.watch(t, reader, "flags")
	e.opstate(t, db, "set", "flags", "dark_mode", "false")
	flags.waitSet(t, "dark_mode", "false")
	sdk.check(t, []evalCase{
		{"boolean", "dark_mode", true, details{Value: false, Reason: "STATIC", FlagMetadata: staticFlags}},
	})

	wrong := e.node(t, "server-sdk.mjs", "OPSTATE_URL="+srv.url, "OPSTATE_TOKEN=not-"+reader)
	wrong.ready(t)
	wrong.check(t, []evalCase{
		{"boolean", "dark_mode", true, details{Value: true, Reason: "ERROR", ErrorCode: "GENERAL", ErrorName: "OFREPApiUnauthorizedError"}},
		{"string", "banner", "none", details{Value: "none", Reason: "ERROR", ErrorCode: "GENERAL", ErrorName: "OFREPApiUnauthorizedError"}},
	})
}
