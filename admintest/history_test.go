package admintest

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/d8da9184/opstate"
)

// keepHistory makes namespace ns of the database db keep its last keep
// changes, through a Store of the test's own: the setting lives in the
// database, so the server's Store and the opstate command honour it.
func keepHistory(t *testing.T, db, ns string, keep int) {
	t.Helper()
	st, err := opstate.Open(db, opstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.SetHistory(ns, keep); err != nil {
		t.Fatalf("SetHistory(%q, %d): %v", ns, keep, err)
	}
}

// historyJS returns a JavaScript expression for the cells of hook name of
// the history panel's rows, newest first, as an array of their texts.
func historyJS(name string) string {
	return `[...document.querySelectorAll('` + hook("history-row") + `')].map(r => r.querySelector('` + hook(name) + `').textContent)`
}

// TestHistory, with namespace flags keeping history and two keys set by
// the opstate command: the page shows each key's last change, and after
// a switch flipped, the write token's name; an edit with a TTL shows the
// key's expiry, about the TTL from now; a key's history lists its changes
// newest first, with when, who, the operation, and the values before and
// after (∅ for none), and a revert button on each but the newest. Reverting the
// opstate command's change puts its value back (the CLI reads it) and
// adds a change by the write token. The namespace's history lists every
// key's changes, a delete and a value that is markup included, as text.
func TestHistory(t *testing.T) {
	e := setup(t)
	s := e.serve(t)
	keepHistory(t, s.db, "flags", 100)
	start := time.Now()
	e.opstate(t, s.db, "set", "flags", "dark_mode", "false")
	e.opstate(t, s.db, "set", "flags", "beta", "on")
	e.opstate(t, s.db, "set", "flags", "motd", xss)
	b := e.newBrowser(t, 1280, 900)
	b.login(s, s.write)
	b.openNamespace("flags")
	b.waitFor("flags' three rows", `document.querySelectorAll('`+hook("key-row")+`').length === 3`)

	// The last change of each key, from the history: the CLI's.
	changed := func(key string) string { return `((c) => c ? c.textContent : "")(` + cellJS(key, "key-changed") + `)` }
	b.waitFor("dark_mode's last change shown", changed("dark_mode")+` !== "—" && `+changed("dark_mode")+` !== ""`)
	if got := b.text(cellJS("dark_mode", "key-changed")); strings.HasPrefix(got, "operator, ") {
		t.Errorf("dark_mode's last change, by the opstate command, shown as %q", got)
	}

	sw := rowOf("dark_mode") + " " + hook("key-switch")
	b.click("flipping dark_mode", sw)
	b.waitFor("dark_mode's last change by operator", changed("dark_mode")+`.startsWith("operator, ")`)

	// An edit with a TTL: the key's expiry shows, an hour from now.
	before := time.Now()
	b.click("editing beta", rowOf("beta")+" "+hook("key-edit"))
	b.do("the edit form", chromedp.WaitVisible(chromedp.CSS(hook("edit-form"))))
	eval[string](b, q("edit-value")+`.value = ""`)
	b.do("saving beta with a TTL",
		chromedp.SendKeys(chromedp.CSS(hook("edit-value")), "off"),
		chromedp.SendKeys(chromedp.CSS(hook("edit-ttl")), "1h"),
		chromedp.Click(chromedp.CSS(hook("edit-save"))),
	)
	expiry := `((c) => c ? c.dataset.expires : "")(` + cellJS("beta", "key-expiry") + `)`
	b.waitFor("beta's expiry shown", expiry+` !== ""`)
	after := time.Now()
	exp, err := time.Parse(time.RFC3339Nano, eval[string](b, expiry))
	if err != nil {
		t.Fatalf("beta's data-expires: %v", err)
	}
	// The server's clock and the database's, to the millisecond.
	if lo, hi := before.Add(time.Hour-time.Second), after.Add(time.Hour+time.Second); exp.Before(lo) || exp.After(hi) {
		t.Errorf("beta expires at %v; want an hour after the save, between %v and %v", exp, lo, hi)
	}
	if got := b.text(cellJS("beta", "key-expiry")); got == "never" || got == "—" {
		t.Errorf("beta's expiry reads %q; want its time", got)
	}

	// A key's history.
	b.click("opening dark_mode's history", rowOf("dark_mode")+" "+hook("key-history"))
	b.waitFor("dark_mode's two changes", `document.querySelectorAll('`+hook("history-row")+`').length === 2`)
	b.shoot("history")
	if got := eval[string](b, q("history")+`.dataset.key`); got != "dark_mode" {
		t.Errorf("the history panel's data-key = %q; want dark_mode", got)
	}
	// When: the database's clock, to the millisecond, on this machine.
	times := eval[[]string](b, `[...document.querySelectorAll('`+hook("history-row")+` `+hook("history-time")+`')].map(c => c.title)`)
	var newer time.Time
	for i, ts := range times {
		tm, err := time.Parse(time.RFC3339Nano, ts)
		if lo, hi := start.Add(-time.Second), time.Now().Add(time.Second); err != nil || tm.Before(lo) || tm.After(hi) {
			t.Errorf("dark_mode's change %d was made at %q (%v); want a time between %v and %v", i, ts, err, lo, hi)
		}
		if i > 0 && tm.After(newer) {
			t.Errorf("dark_mode's changes, newest first, at %q", times)
		}
		newer = tm
	}
	type row struct{ actor, op, before, after string }
	rows := func() []row {
		actors, ops := eval[[]string](b, historyJS("history-actor")), eval[[]string](b, historyJS("history-op"))
		befores, afters := eval[[]string](b, historyJS("history-before")), eval[[]string](b, historyJS("history-after"))
		var rs []row
		for i := range actors {
			rs = append(rs, row{actors[i], ops[i], befores[i], afters[i]})
		}
		return rs
	}
	rs := rows()
	if len(rs) != 2 || rs[0] != (row{"operator", "set", "false", "true"}) || rs[1].op != "set" || rs[1].before != "∅" || rs[1].after != "false" || rs[1].actor == "operator" {
		t.Fatalf("dark_mode's history = %q; want operator's set false→true, then another's set ∅→false", rs)
	}
	reverts := eval[[]bool](b, `[...document.querySelectorAll('`+hook("history-row")+`')].map(r => r.querySelector('`+hook("history-revert")+`') !== null)`)
	if len(reverts) != 2 || reverts[0] || !reverts[1] {
		t.Errorf("revert buttons on dark_mode's changes, newest first: %v; want none on the newest, one on the other", reverts)
	}

	// Revert to the value after the opstate command's change.
	seq := eval[string](b, `document.querySelectorAll('`+hook("history-row")+`')[1].dataset.seq`)
	b.click("reverting dark_mode to change "+seq, hook("history-row")+`[data-seq="`+seq+`"] `+hook("history-revert"))
	b.waitFor("dark_mode's three changes", `document.querySelectorAll('`+hook("history-row")+`').length === 3`)
	b.waitFor("dark_mode's switch off", `document.querySelector('`+sw+`').getAttribute("aria-checked") === "false"`)
	if got := e.opstate(t, s.db, "get", "flags", "dark_mode"); got != "false\n" {
		t.Errorf("opstate get flags dark_mode after the revert = %q; want false", got)
	}
	if rs := rows(); rs[0] != (row{"operator", "set", "true", "false"}) {
		t.Errorf("dark_mode's newest change after the revert = %q; want operator's set true→false", rs[0])
	}
	b.shoot("reverted")

	// The namespace's history, after a delete.
	b.deleteKey("beta")
	b.waitFor("beta gone from the table", rowJS("beta")+` === null`)
	b.click("opening flags' history", hook("ns-history"))
	b.waitFor("flags' seven changes", q("history")+`.dataset.key === "" && document.querySelectorAll('`+hook("history-row")+`').length === 7`)
	b.shoot("namespace-history")
	keys, ops := eval[[]string](b, historyJS("history-key")), eval[[]string](b, historyJS("history-op"))
	if keys[0] != "beta" || ops[0] != "delete" {
		t.Errorf("flags' newest change: %s of %s; want delete of beta", ops[0], keys[0])
	}
	if got := eval[[]string](b, historyJS("history-after"))[0]; got != "∅" {
		t.Errorf("the delete's value after shown as %q; want ∅", got)
	}
	var sawXSS bool
	for _, v := range eval[[]string](b, historyJS("history-after")) {
		sawXSS = sawXSS || v == xss
	}
	if !sawXSS {
		t.Errorf("flags' history shows no value %q as text: %q", xss, eval[[]string](b, historyJS("history-after")))
	}
	b.noMarkup()
	if c := b.consoleErrors(); len(c) > 0 {
		t.Errorf("the page's console errors: %q", c)
	}
}

// TestRevertConflict: a revert is a conditional write against the value
// the page shows. With the page's event stream blocked, the page shows
// dark_mode as it was read (true) while the opstate command changes it
// (maybe); reverting to the first change (false) is refused, the page
// says so, and the command's value stays.
func TestRevertConflict(t *testing.T) {
	e := setup(t)
	s := e.serve(t)
	keepHistory(t, s.db, "flags", 100)
	e.opstate(t, s.db, "set", "flags", "dark_mode", "false")
	e.opstate(t, s.db, "set", "flags", "dark_mode", "true")
	b := e.newBrowser(t, 1280, 900)
	b.blockEvents(s.url)
	b.login(s, s.write)
	b.openNamespace("flags")
	sw := rowOf("dark_mode") + " " + hook("key-switch")
	b.waitFor("dark_mode's switch on", `((e) => e && e.getAttribute("aria-checked") === "true")(document.querySelector('`+sw+`'))`)
	if got := eval[string](b, q("stream-state")+`.dataset.state`); got == "live" {
		t.Fatalf("the stream's state is live with the event stream blocked")
	}

	e.opstate(t, s.db, "set", "flags", "dark_mode", "maybe")
	b.click("opening dark_mode's history", rowOf("dark_mode")+" "+hook("key-history"))
	b.waitFor("dark_mode's three changes", `document.querySelectorAll('`+hook("history-row")+`').length === 3`)
	seq := eval[string](b, `document.querySelectorAll('`+hook("history-row")+`')[2].dataset.seq`)
	b.click("reverting dark_mode to change "+seq, hook("history-row")+`[data-seq="`+seq+`"] `+hook("history-revert"))
	b.waitFor("the error banner", `!`+q("error-banner")+`.hidden`)
	b.shoot("revert-conflict")
	if got := b.text(q("error-banner")); got == "" {
		t.Errorf("the error banner is empty")
	}
	if got := e.opstate(t, s.db, "get", "flags", "dark_mode"); got != "maybe\n" {
		t.Errorf("opstate get flags dark_mode after the refused revert = %q; want maybe", got)
	}
	b.noDialogs()
}
