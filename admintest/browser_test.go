package admintest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// shotsEnv names a directory where every test saves its screenshots, also
// when it passes; without it they are saved only on failure, into a new
// directory of the system's temporary directory that the test names.
const shotsEnv = "OPSTATE_SCREENSHOTS"

// A browser is a headless Chromium with one tab, for one test.
type browser struct {
	t   *testing.T
	ctx context.Context // the tab's

	mu      sync.Mutex // guards the fields below
	shots   []shot     // the views taken so far, in order
	dialogs []string   // the JavaScript dialogs opened (alert, confirm, prompt)
	console []string   // the page's uncaught exceptions and errors
}

// A shot is a screenshot of a view of the page, PNG.
type shot struct {
	name string
	png  []byte
}

// newBrowser starts Chromium for the test, headless, with a window of
// width×height. It dismisses and records every JavaScript dialog, records
// the page's exceptions and console errors, and at the end of the test
// saves the screenshots (shotsEnv) and stops the browser. extra are more
// options of the browser's command line.
func (e *testEnv) newBrowser(t *testing.T, width, height int, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(e.browser),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
		// The sandbox needs user namespaces that containers and root
		// (CI runs as root) do not give; the pages are the test's own.
		chromedp.NoSandbox,
	)
	opts = append(opts, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	b := &browser{t: t, ctx: ctx}

	var wg sync.WaitGroup
	t.Cleanup(func() {
		b.saveShots()
		cancel()
		cancelAlloc()
		wg.Wait()
	})
	// The first Run starts the browser and lives as long as ctx: no
	// timeout on it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", e.browser, err)
	}

	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	messages := chromedp.Console(ctx)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.dialogs = append(b.dialogs, fmt.Sprintf("%s %q", ev.Type, ev.Message))
			b.mu.Unlock()
			// A dialog blocks the page until it is answered.
			if _, err := chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false}); err != nil {
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for m, err := range messages {
			if err != nil {
				return
			}
			// Failed requests are the network's entries of the log,
			// which the tests cause on purpose (a refused login);
			// what the test fails on is the script's errors and the
			// refusals of the Content-Security-Policy ("security").
			if m.IsException() || m.Type == chromedp.ConsoleError && m.Source != "network" {
				b.mu.Lock()
				b.console = append(b.console, fmt.Sprintf("%s (%s %s:%d)", m, m.Source, m.URL, m.Line))
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// dialogsOpened returns the dialogs the page opened so far.
func (b *browser) dialogsOpened() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.dialogs...)
}

// consoleErrors returns the page's uncaught exceptions and console errors
// so far.
func (b *browser) consoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.console...)
}

// do runs the steps in the tab, failing the test with what if one fails
// or waitLimit passes first.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitLimit)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v%s", what, err, b.consoleNote())
	}
}

// click clicks the first element of the CSS selector sel once it is
// shown, failing the test with what if waitLimit passes first. A click
// that finds the element replaced as the page redraws it (a list read
// again, a row updated by an event) is tried again on the new one.
func (b *browser) click(what, sel string) {
	b.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, waitLimit)
		err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel)))
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: %v%s", what, err, b.consoleNote())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eval evaluates the JavaScript expression in the page and returns its
// value; it fails the test if the expression throws.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitLimit)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v%s", expr, err, b.consoleNote())
	}
	return v
}

// await evaluates the JavaScript expression, a promise, in the page and
// returns the value it resolves to; it fails the test if the expression
// throws or the promise rejects.
func await[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitLimit)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v%s", expr, err, b.consoleNote())
	}
	return v
}

// waitFor evaluates the JavaScript expression cond in the page until it
// is true, failing the test with what if waitLimit passes first. It
// polls through the DevTools protocol, which the page's
// Content-Security-Policy does not restrict, rather than with script of
// the page's own.
func (b *browser) waitFor(what, cond string) {
	b.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, waitLimit)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+cond+")"))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			if err != nil {
				b.t.Fatalf("waiting for %s: %v%s", what, err, b.consoleNote())
			}
			b.t.Fatalf("waiting for %s: %s still false after %v%s", what, cond, waitLimit, b.consoleNote())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitConsole waits for a console error of the page holding text,
// failing the test with what if waitLimit passes first.
func (b *browser) waitConsole(what, text string) {
	b.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !strings.Contains(strings.Join(b.consoleErrors(), "\n"), text) {
		if time.Now().After(deadline) {
			b.t.Fatalf("waiting for %s: no console error holds %q after %v%s", what, text, waitLimit, b.consoleNote())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clearConsole forgets the page's console errors so far.
func (b *browser) clearConsole() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.console = nil
}

// consoleNote returns the page's console errors so far as a note for a
// failure message, or "".
func (b *browser) consoleNote() string {
	c := b.consoleErrors()
	if len(c) == 0 {
		return ""
	}
	return "\nthe page's console errors:\n\t" + strings.Join(c, "\n\t")
}

// shoot takes a screenshot of the page as the view name, kept for
// saveShots.
func (b *browser) shoot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitLimit)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.shots = append(b.shots, shot{name, png})
}

// saveShots writes the screenshots taken, and one of the page as it is
// now, into the directory shotsEnv names, or, when the test failed and
// shotsEnv is unset, into a new directory that it logs.
func (b *browser) saveShots() {
	t := b.t
	dir := os.Getenv(shotsEnv)
	if dir == "" && !t.Failed() {
		return
	}
	b.shoot("last")
	if dir == "" {
		d, err := os.MkdirTemp("", "opstate-admintest-shots-")
		if err != nil {
			t.Logf("no directory for the screenshots: %v", err)
			return
		}
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("no directory for the screenshots: %v", err)
		return
	}
	prefix := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, s := range b.shots {
		p := filepath.Join(dir, fmt.Sprintf("%s-%02d-%s.png", prefix, i, s.name))
		if err := os.WriteFile(p, s.png, 0o644); err != nil {
			t.Logf("screenshot %s: %v", s.name, err)
		}
	}
	t.Logf("screenshots of %s: %s", t.Name(), dir)
}
