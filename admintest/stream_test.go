package admintest

import (
	"testing"

	"github.com/chromedp/chromedp"
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

// TestStreamBack uses the page of a server without tokens (no session to
// lose with the process): once the server stops, the page shows that it
// is reconnecting; changes the CLI makes meanwhile, and the server
// started again on the same address, the page shows it live again, with
// those changes, without a reload.
func TestStreamBack(t *testing.T) {
	e := setup(t)
	s := e.serveOpen(t)
	e.opstate(t, s.db, "set", "flags", "dark_mode", "false")
	b := e.newBrowser(t, 1280, 900)
	b.do("opening the page", chromedp.Navigate(s.url+"/"))
	b.waitFor("the application", `document.body.dataset.ready === "1"`)
	b.openNamespace("flags")
	state := q("stream-state") + `.dataset.state`
	b.waitFor("the stream live", state+` === "live"`)
	eval[bool](b, `window.opstateNoReload = true`)

	s.stop(t)
	b.waitFor("the stream reconnecting once the server stopped", state+` === "reconnecting"`)
	e.opstate(t, s.db, "set", "flags", "dark_mode", "true")
	e.opstate(t, s.db, "set", "flags", "missed", "while down")
	s.restart(t)
	b.waitFor("the stream live again", state+` === "live"`)
	sw := rowOf("dark_mode") + " " + hook("key-switch")
	b.waitFor("dark_mode's switch on, set while the server was down",
		`document.querySelector('`+sw+`').getAttribute("aria-checked") === "true"`)
	b.waitFor("key missed, set while the server was down, in the table",
		`((c) => c && c.textContent === "while down")(`+cellJS("missed", "key-value")+`)`)
	if !eval[bool](b, `window.opstateNoReload === true`) {
		t.Errorf("the page was reloaded to show the changes made while the server was down")
	}
	b.shoot("back")
	b.noDialogs()
}
