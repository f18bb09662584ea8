// Package admintest tests the admin page of opstate serve in a real
// browser: headless Chromium, driven through the DevTools protocol with
// github.com/chromedp/chromedp.
//
// Its tests build the opstate command, start opstate serve on a database
// of their own with a write token and a read token (made with opstate
// token), and use the page as a person would, through the data-test
// hooks of its elements (admintest/HOOKS.md): log in, open a namespace,
// flip a switch, edit with a TTL, create, delete, and see changes made
// with the opstate command appear without a reload, the command reading
// what the page wrote. Values, keys and namespace names that are markup
// must show as text and open no dialog; a read session must be shown no
// control that edits and be refused when it writes; pages of another
// origin or site must not change state with the browser's session.
//
// Without Chromium (chromium, chromium-browser or google-chrome on the
// PATH) the tests skip, or fail when CI=true; -short skips them. A test
// that fails saves screenshots of the views it went through, and of the
// page as it was, into a directory it logs; OPSTATE_SCREENSHOTS=DIR saves
// them into DIR, also when it passes.
package admintest
