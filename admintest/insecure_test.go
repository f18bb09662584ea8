package admintest

import (
	"net"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestInsecureOrigin uses the page over plain HTTP at a name other than
// localhost (the browser maps opstate.test to 127.0.0.1), which is not a
// secure context: the browser offers the page no crypto.subtle, and the
// page computes the SHA-256 of the If-Match it sends itself. A switch
// flipped is stored, which needs the page's ETag of the value shown to
// be the server's; with the event stream blocked, a flip after the CLI
// changed the value is refused, the page says so, and the CLI's value
// stays: the write was conditional.
func TestInsecureOrigin(t *testing.T) {
	e := setup(t)
	s := e.serve(t)
	e.opstate(t, s.db, "set", "flags", "dark_mode", "false")
	e.opstate(t, s.db, "set", "flags", "beta", "false")
	b := e.newBrowser(t, 1280, 900, chromedp.Flag("host-resolver-rules", "MAP opstate.test 127.0.0.1"))
	_, port, err := net.SplitHostPort(strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	base := "http://opstate.test:" + port
	b.blockEvents(base)
	b.loginAt(base, s.write)
	if eval[bool](b, `window.isSecureContext || !!(window.crypto && window.crypto.subtle)`) {
		t.Fatalf("%s is a secure context, or offers crypto.subtle: the test needs one that is not", base)
	}
	b.openNamespace("flags")
	b.waitFor("flags' two rows", `document.querySelectorAll('`+hook("key-row")+`').length === 2`)

	sw := rowOf("dark_mode") + " " + hook("key-switch")
	b.click("flipping dark_mode", sw)
	b.waitFor("dark_mode's switch on", `document.querySelector('`+sw+`').getAttribute("aria-checked") === "true"`)
	if got := e.opstate(t, s.db, "get", "flags", "dark_mode"); got != "true\n" {
		t.Errorf("opstate get flags dark_mode after the flip = %q; want true", got)
	}

	e.opstate(t, s.db, "set", "flags", "beta", "maybe")
	b.click("flipping beta, changed since by the CLI", rowOf("beta")+" "+hook("key-switch"))
	b.waitFor("the error banner", `!`+q("error-banner")+`.hidden`)
	b.shoot("insecure-conflict")
	if got := e.opstate(t, s.db, "get", "flags", "beta"); got != "maybe\n" {
		t.Errorf("opstate get flags beta after the refused flip = %q; want maybe", got)
	}
	b.noDialogs()
}
