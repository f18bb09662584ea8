package admintest

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// TestRead logs in with the read token: the page shows the keys, their
// history and the changes the CLI makes, but no control that edits (the
// switch is disabled, no edit, delete, new-key or revert button shows);
// clicking the switch changes nothing, and a write and a revert the
// page's script makes with the session's CSRF token are refused with 403,
// the CLI reading the values unchanged.
func TestRead(t *testing.T) {
	e := setup(t)
	s := e.serve(t)
	keepHistory(t, s.db, "flags", 100)
	e.opstate(t, s.db, "set", "flags", "note", "hi")
	e.opstate(t, s.db, "set", "flags", "dark_mode", "false")
	e.opstate(t, s.db, "set", "flags", "note", "hello")
	b := e.newBrowser(t, 1280, 900)
	b.login(s, s.read)
	b.openNamespace("flags")
	b.waitFor("flags' two rows", `document.querySelectorAll('`+hook("key-row")+`').length === 2`)
	b.shoot("read")

	if got := b.text(q("whoami")); got != "viewer (read)" {
		t.Errorf("whoami = %q; want %q", got, "viewer (read)")
	}
	if got := eval[string](b, `document.body.dataset.scope`); got != "read" {
		t.Errorf("body data-scope = %q; want read", got)
	}
	sw := rowOf("dark_mode") + " " + hook("key-switch")
	if !eval[bool](b, `document.querySelector('`+sw+`').disabled`) {
		t.Errorf("dark_mode's switch is enabled for a read session")
	}
	// What shows of the controls that edit: an element is shown when it
	// takes room on the page.
	shown := eval[[]string](b, `[...document.querySelectorAll('`+hook("key-edit")+`, `+hook("key-delete")+`, `+hook("key-new")+`')]
		.filter(e => e.getClientRects().length > 0).map(e => e.dataset.test)`)
	if len(shown) > 0 {
		t.Errorf("a read session is shown the controls %q", shown)
	}

	b.do("clicking the disabled switch", chromedp.Click(chromedp.CSS(sw), chromedp.NodeReady))
	status := await[int](b, `fetch("/v1/namespaces/flags/keys/dark_mode", {method: "PUT", body: "true",
		headers: {"X-CSRF-Token": document.querySelector('meta[name="opstate-csrf"]').content}}).then(r => r.status)`)
	if status != 403 {
		t.Errorf("PUT from a read session's page = %d; want 403", status)
	}
	// The revert to note's first change, hi.
	status = await[int](b, `fetch("/v1/namespaces/flags/keys/note/revert?seq=1", {method: "POST",
		headers: {"X-CSRF-Token": document.querySelector('meta[name="opstate-csrf"]').content}}).then(r => r.status)`)
	if status != 403 {
		t.Errorf("revert from a read session's page = %d; want 403", status)
	}
	if got := e.opstate(t, s.db, "get", "flags", "note"); got != "hello\n" {
		t.Errorf("opstate get flags note = %q after a read session's revert; want hello", got)
	}
	if got := e.opstate(t, s.db, "get", "flags", "dark_mode"); got != "false\n" {
		t.Errorf("opstate get flags dark_mode = %q after a read session's attempts; want false", got)
	}

	// A key's history, with no revert button.
	b.click("opening note's history", rowOf("note")+" "+hook("key-history"))
	b.waitFor("note's two changes", `document.querySelectorAll('`+hook("history-row")+`').length === 2`)
	if n := eval[int](b, `document.querySelectorAll('`+hook("history-revert")+`').length`); n != 0 {
		t.Errorf("a read session is shown %d revert buttons", n)
	}

	// A read session still sees changes live.
	e.opstate(t, s.db, "set", "flags", "dark_mode", "true")
	b.waitFor("dark_mode's switch on after opstate set",
		`document.querySelector('`+sw+`').getAttribute("aria-checked") === "true"`)
	b.noDialogs()
	if c := b.consoleErrors(); len(c) > 0 {
		t.Errorf("the page's console errors: %q", c)
	}
}
