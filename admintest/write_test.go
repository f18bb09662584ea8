package admintest

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// xss is a value that runs script if a page puts it in as markup.
const xss = `<img src=x onerror=alert(1)>`

// noMarkup fails the test if the page holds an element that the values
// it shows would have made, had they gone in as markup, or opened a
// dialog.
func (b *browser) noMarkup() {
	b.t.Helper()
	if n := eval[int](b, `document.querySelectorAll('[onerror], img[src="x"], b.xss, script:not([src])').length`); n != 0 {
		b.t.Errorf("the page holds %d elements made from values (an onerror attribute, img src=x, b.xss, inline script)", n)
	}
	b.noDialogs()
}

// TestWrite logs in with the write token and, in namespace flags: sees
// its keys and count; flips a switch, and the CLI reads the new value;
// sees a change made by the CLI, to a switch and a new key, without a
// reload; edits a value with a TTL; creates a key holding markup and
// deletes a key, the CLI seeing each; filters the keys; opens a namespace
// that does not exist yet by name and creates a key in it. Values, keys
// and a namespace name that are markup (xss) show as text, and no dialog
// opens.
func TestWrite(t *testing.T) {
	e := setup(t)
	s := e.serve(t)
	e.opstate(t, s.db, "set", "flags", "dark_mode", "false")
	e.opstate(t, s.db, "set", "flags", "beta", "on")
	e.opstate(t, s.db, "set", "flags", "seeded", xss)
	e.opstate(t, s.db, "set", xss, "k", "v")
	b := e.newBrowser(t, 1280, 900)
	b.login(s, s.write)

	// The namespaces, with their key counts; a namespace's name is text.
	b.waitFor("namespace flags listed with 3 keys",
		`[...document.querySelectorAll('`+hook("ns-item")+`')].some(li => li.dataset.ns === "flags" && li.querySelector('`+hook("ns-count")+`').textContent === "3")`)
	b.waitFor("the namespace named as markup listed, as text",
		`[...document.querySelectorAll('`+hook("ns-item")+`')].some(li => li.dataset.ns === `+js(xss)+` && li.textContent.includes(`+js(xss)+`))`)
	b.openNamespace("flags")
	b.waitFor("flags' three rows", `document.querySelectorAll('`+hook("key-row")+`').length === 3`)
	if got := b.text(cellJS("seeded", "key-value")); got != xss {
		t.Errorf("value of seeded shown as %q; want the text %q", got, xss)
	}
	b.shoot("namespace")
	b.noMarkup()

	// A switch flipped is stored: the CLI reads it.
	sw := rowOf("dark_mode") + " " + hook("key-switch")
	if got := eval[string](b, `document.querySelector('`+sw+`').getAttribute("aria-checked")`); got != "false" {
		t.Fatalf("dark_mode's switch aria-checked = %q; want false", got)
	}
	b.click("flipping dark_mode", sw)
	b.waitFor("dark_mode's switch on", `document.querySelector('`+sw+`').getAttribute("aria-checked") === "true"`)
	if got := e.opstate(t, s.db, "get", "flags", "dark_mode"); got != "true\n" {
		t.Errorf("opstate get flags dark_mode after the flip = %q; want true", got)
	}

	// Changes made by the CLI appear without a reload: a global set in
	// the page now is still there after them.
	eval[bool](b, `window.opstateNoReload = true`)
	e.opstate(t, s.db, "set", "flags", "dark_mode", "false")
	b.waitFor("dark_mode's switch off after opstate set",
		`document.querySelector('`+sw+`').getAttribute("aria-checked") === "false"`)
	e.opstate(t, s.db, "set", "flags", "live", "from the CLI")
	b.waitFor("key live, set by the CLI, in the table",
		`((c) => c && c.textContent === "from the CLI")(`+cellJS("live", "key-value")+`)`)
	e.opstate(t, s.db, "set", "flags", xss, xss)
	b.waitFor("the key named as markup, set by the CLI, in the table",
		`((c) => c && c.textContent === `+js(xss)+`)(`+cellJS(xss, "key-name")+`)`)
	if got := b.text(cellJS(xss, "key-value")); got != xss {
		t.Errorf("value of the key named as markup shown as %q; want the text %q", got, xss)
	}
	if !eval[bool](b, `window.opstateNoReload === true`) {
		t.Errorf("the page was reloaded to show the CLI's changes")
	}
	b.shoot("live")
	b.noMarkup()

	// Edit with a TTL.
	b.click("editing beta", rowOf("beta")+" "+hook("key-edit"))
	b.do("the edit form", chromedp.WaitVisible(chromedp.CSS(hook("edit-form"))))
	if got := eval[string](b, q("edit-value")+`.value`); got != "on" {
		t.Errorf("the edit form holds %q for beta; want on", got)
	}
	eval[string](b, q("edit-value")+`.value = ""`)
	b.do("typing beta's new value and TTL",
		chromedp.SendKeys(chromedp.CSS(hook("edit-value")), "off"),
		chromedp.SendKeys(chromedp.CSS(hook("edit-ttl")), "1h"),
	)
	b.shoot("edit")
	b.click("saving beta", hook("edit-save"))
	b.waitFor("the edit form closed", q("edit-form")+`.hidden`)
	b.waitFor("beta shown as off", `((c) => c && c.textContent === "off")(`+cellJS("beta", "key-value")+`)`)
	if got := e.opstate(t, s.db, "get", "flags", "beta"); got != "off\n" {
		t.Errorf("opstate get flags beta after the edit = %q; want off", got)
	}

	// Create a key whose value is markup.
	b.do("creating motd",
		chromedp.Click(chromedp.CSS(hook("key-new"))),
		chromedp.WaitVisible(chromedp.CSS(hook("edit-form"))),
		chromedp.SendKeys(chromedp.CSS(hook("edit-key")), "motd"),
		chromedp.SendKeys(chromedp.CSS(hook("edit-value")), xss),
		chromedp.Click(chromedp.CSS(hook("edit-save"))),
	)
	b.waitFor("motd in the table", cellJS("motd", "key-value")+` !== null`)
	if got := b.text(cellJS("motd", "key-value")); got != xss {
		t.Errorf("value of motd shown as %q; want the text %q", got, xss)
	}
	if got := e.opstate(t, s.db, "get", "flags", "motd"); got != xss+"\n" {
		t.Errorf("opstate get flags motd = %q; want %q", got, xss)
	}
	b.noMarkup()

	// Delete: the first click arms, the second deletes.
	b.deleteKey("live")
	b.waitFor("live gone from the table", rowJS("live")+` === null`)
	if out, _, err := e.run("-db", s.db, "get", "flags", "live"); err == nil {
		t.Errorf("opstate get flags live after the delete = %q, exit status 0; want the key missing", out)
	}
	b.shoot("after-delete")
	b.noMarkup()

	// The filter shows the keys that hold its text.
	b.do("filtering on dark", chromedp.SendKeys(chromedp.CSS(hook("key-filter")), "dark"))
	b.waitFor("only dark_mode shown", `[...document.querySelectorAll('`+hook("key-row")+`')]
		.filter(r => r.getClientRects().length > 0).map(r => r.dataset.key).join() === "dark_mode"`)

	// A namespace that does not exist yet, opened by name, and a key
	// created in it.
	b.do("opening namespace fresh",
		chromedp.SendKeys(chromedp.CSS(hook("ns-new-name")), "fresh"),
		chromedp.Click(chromedp.CSS(hook("ns-new-open"))),
	)
	b.waitFor("namespace fresh open", q("ns-title")+`.textContent === "fresh"`)
	b.waitFor("fresh shown empty", `document.querySelectorAll('`+hook("key-row")+`').length === 0 && !`+q("keys-empty")+`.hidden`)
	b.do("creating first in fresh",
		chromedp.Click(chromedp.CSS(hook("key-new"))),
		chromedp.WaitVisible(chromedp.CSS(hook("edit-form"))),
		chromedp.SendKeys(chromedp.CSS(hook("edit-key")), "first"),
		chromedp.SendKeys(chromedp.CSS(hook("edit-value")), "1"),
		chromedp.Click(chromedp.CSS(hook("edit-save"))),
	)
	b.waitFor("first in fresh's table", `((c) => c && c.textContent === "1")(`+cellJS("first", "key-value")+`)`)
	if got := e.opstate(t, s.db, "get", "fresh", "first"); got != "1\n" {
		t.Errorf("opstate get fresh first = %q; want 1", got)
	}
	if c := b.consoleErrors(); len(c) > 0 {
		t.Errorf("the page's console errors: %q", c)
	}
}
