package admintest

import (
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestPhone uses the page on a phone's screen (390×844 CSS pixels, touch,
// the page's viewport meta honoured): after logging in, namespace flags
// fits the screen's width (the page does not scroll sideways) with each
// row's key, value and switch on it, a long value without spaces
// included, and a tap on a switch is stored.
func TestPhone(t *testing.T) {
	e := setup(t)
	s := e.serve(t)
	e.opstate(t, s.db, "set", "flags", "dark_mode", "false")
	e.opstate(t, s.db, "set", "flags", "motd", "a message of the day long enough to need more than one line on a phone's screen")
	// A value with no space to break it, wider than the screen.
	e.opstate(t, s.db, "set", "flags", "endpoint", "https://"+strings.Repeat("a", 80)+".example.com/"+strings.Repeat("b", 60))
	const width, height = 390, 844
	b := e.newBrowser(t, width, height)
	b.do("emulating a phone", chromedp.EmulateViewport(width, height, chromedp.EmulateScale(3), chromedp.EmulateMobile, chromedp.EmulateTouch))
	b.login(s, s.write)
	// The side list is behind a menu on a phone: open the namespace by
	// the URL's fragment.
	eval[string](b, `location.hash = "#ns=flags"`)
	b.waitFor("namespace flags open", q("ns-title")+`.textContent === "flags"`)
	b.waitFor("flags' three rows", `document.querySelectorAll('`+hook("key-row")+`').length === 3`)
	b.shoot("phone")

	// A phone's browser widens its viewport (window.innerWidth) to what
	// the page lays out, zooming out: the page is measured against the
	// screen's width instead.
	if w := eval[float64](b, `document.documentElement.scrollWidth`); w > width {
		t.Errorf("the page is %v pixels wide on a screen of %d: it scrolls sideways", w, width)
	}
	// Each row's key, value and switch lie within the screen's width.
	off := eval[[]string](b, `[...document.querySelectorAll('`+hook("key-name")+`, `+hook("key-value")+`, `+hook("key-switch")+`')]
		.filter(e => { const r = e.getBoundingClientRect(); return r.width === 0 || r.left < 0 || r.right > `+strconv.Itoa(width)+`; })
		.map(e => e.dataset.test + " of " + e.closest("tr").dataset.key)`)
	if len(off) > 0 {
		t.Errorf("off the screen or not shown: %q", off)
	}

	sw := rowOf("dark_mode") + " " + hook("key-switch")
	b.do("tapping dark_mode's switch", chromedp.Tap(chromedp.CSS(sw)))
	b.waitFor("dark_mode's switch on", `document.querySelector('`+sw+`').getAttribute("aria-checked") === "true"`)
	if got := e.opstate(t, s.db, "get", "flags", "dark_mode"); got != "true\n" {
		t.Errorf("opstate get flags dark_mode after the tap = %q; want true", got)
	}
	b.noDialogs()
}
