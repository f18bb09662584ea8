package admintest

import (
	"testing"
)

// TestStreamDown logs in and opens a namespace, whose event stream the
// page shows as live; once the server stops, the page shows that it is
// reconnecting: what it shows may be out of date.
func TestStreamDown(t *testing.T) {
	e := setup(t)
	s := e.serve(t)
	e.opstate(t, s.db, "set", "flags", "dark_mode", "false")
	b := e.newBrowser(t, 1280, 900)
	b.login(s, s.write)
	b.openNamespace("flags")
	state := q("stream-state") + `.dataset.state`
	b.waitFor("the stream live", state+` === "live"`)
	s.stop(t)
	b.waitFor("the stream reconnecting once the server stopped", state+` === "reconnecting"`)
	if got := b.text(q("stream-state")); got != "reconnecting" {
		t.Errorf("the stream's state reads %q; want reconnecting", got)
	}
	b.shoot("reconnecting")
	b.noDialogs()
}
