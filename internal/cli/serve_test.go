package cli

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/d8da9184/opstate/internal/cli/clitest"
)

// tokenLine returns the token-file line of name, scope and secret.
func tokenLine(name, scope, secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return name + " " + scope + " sha256:" + hex.EncodeToString(sum[:])
}

// writeTokens writes lines to the token file path, mode 0600.
func writeTokens(t *testing.T, path string, lines ...string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestToken checks opstate token: a new secret on standard output, the
// line that admits it on standard error, exit 0, no database.
func TestToken(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	code, stdout, stderr := runCLI(t, "", "token", "ci", "write")
	secret := strings.TrimSuffix(stdout, "\n")
	if code != 0 || len(secret) < 22 || strings.ContainsAny(secret, " \n") {
		t.Fatalf("token ci write = %d, %q, %q; want 0 and a secret of at least 128 bits", code, stdout, stderr)
	}
	if want := tokenLine("ci", "write", secret) + "\n"; stderr != want {
		t.Errorf("token ci write: stderr %q; want %q", stderr, want)
	}
	if _, stdout2, _ := runCLI(t, "", "token", "ci", "write"); stdout2 == stdout {
		t.Error("two runs of token printed the same secret")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("token created %v", entries)
	}
	for _, args := range [][]string{{"token", "ci", "admin"}, {"token", "ci"}, {"token", "", "read"}} {
		if code, stdout, stderr := runCLI(t, "", args...); code != exitUsage || stdout != "" || stderr == "" {
			t.Errorf("%q = %d, %q, %q; want 2 and a message", args, code, stdout, stderr)
		}
	}
	if code, _, stderr := runCLI(t, "", "token", "two words", "read"); code != exitFail || !strings.Contains(stderr, "token name") {
		t.Errorf("token with a bad name = %d, %q; want 1 and a message about the name", code, stderr)
	}
}

// TestServeUsage checks what serve refuses before opening the database:
// bad usage (exit 2), a bad token file or a busy address (exit 1), each
// with a clear message, creating nothing.
func TestServeUsage(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "tokens")
	writeTokens(t, good, tokenLine("ci", "read", "s"))
	open := filepath.Join(dir, "open-tokens")
	writeTokens(t, open, tokenLine("ci", "read", "s"))
	os.Chmod(open, 0o644)
	plain := filepath.Join(dir, "plain-tokens")
	writeTokens(t, plain, "# ci", tokenLine("ci", "read", "s"), "PLAIN-SECRET")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tt := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"-addr", "0.0.0.0:8047"}, exitUsage, "not a loopback address"},
		{[]string{"-addr", ":8047"}, exitUsage, "not a loopback address"},
		{[]string{"-addr", "example.com:8047"}, exitUsage, "not a loopback address"},
		{[]string{"-addr", "8047"}, exitUsage, "not HOST:PORT"},
		{[]string{"-max-value", "0"}, exitUsage, "not a positive number"},
		{[]string{"-flags", ""}, exitUsage, "empty -flags"},
		{[]string{"-tokens", ""}, exitUsage, "empty -tokens"},
		{[]string{"-cors", "*"}, exitUsage, "is not an origin"},
		{[]string{"-cors", "https://app.example/"}, exitUsage, "is not an origin"},
		{[]string{"extra"}, exitUsage, "want 0 arguments"},
		{[]string{"-tokens", open}, exitFail, "chmod 600"},
		{[]string{"-tokens", plain}, exitFail, "plain-tokens:3"},
		{[]string{"-tokens", filepath.Join(dir, "none")}, exitFail, "no such file"},
		{[]string{"-addr", busy.Addr().String()}, exitFail, "address already in use"},
	} {
		db := filepath.Join(dir, "x.db")
		args := append([]string{"-db", db, "serve"}, tt.args...)
		code, stdout, stderr := runCLI(t, "", args...)
		if code != tt.code || stdout != "" || !strings.Contains(stderr, tt.msg) {
			t.Errorf("%q = %d, %q, %q; want %d and a message with %q", args, code, stdout, stderr, tt.code, tt.msg)
		}
		if strings.Contains(stderr, "PLAIN-SECRET") {
			t.Errorf("%q: the message quotes a secret: %q", args, stderr)
		}
		if _, err := os.Stat(db); err == nil {
			t.Fatalf("%q created the database", args)
		}
	}
	// With -tokens, any address is taken (here the busy one's host).
	code, _, stderr := runCLI(t, "", "-db", filepath.Join(dir, "x.db"), "serve", "-tokens", good, "-addr", busy.Addr().String())
	if code != exitFail || !strings.Contains(stderr, "address already in use") {
		t.Errorf("serve -tokens on a busy port = %d, %q; want 1, address already in use", code, stderr)
	}
}

// startServe runs opstate serve on db with args, in a child process, and
// returns it and its base URL once it listens.
func startServe(t *testing.T, db string, args ...string) (*clitest.Process, string) {
	t.Helper()
	p := clitest.Start(t, clitest.Command(append([]string{"-db", db, "serve", "-addr", "127.0.0.1:0"}, args...)...))
	return p, p.Serving(t)
}

// call sends a request with the token secret (none if "") and returns
// the status and body.
func call(t *testing.T, method, url, secret, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// bulkETag returns the ETag of the OFREP bulk evaluation at base.
func bulkETag(t *testing.T, base, secret string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/ofrep/v1/evaluate/flags", strings.NewReader(`{"context":{}}`))
	req.Header.Set("X-API-Key", secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("ETag") == "" {
		t.Fatalf("bulk evaluation = %d, ETag %q", resp.StatusCode, resp.Header.Get("ETag"))
	}
	return resp.Header.Get("ETag")
}

// events opens the event stream at url and returns its data lines, and
// end-event lines, as they come; the first comment has been read.
func events(t *testing.T, url, secret string) <-chan string {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s = %d", url, resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, ":") {
		t.Fatalf("first line of %s: %q, %v", url, line, err)
	}
	ch := make(chan string, 100)
	go func() {
		defer close(ch)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if strings.HasPrefix(line, "data: ") || strings.HasPrefix(line, "event: ") {
				ch <- strings.TrimSuffix(line, "\n")
			}
		}
	}()
	return ch
}

// expect fails the test unless the next line of ch is want.
func expect(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	select {
	case got, ok := <-ch:
		if !ok {
			t.Fatalf("the event stream ended; want %q", want)
		}
		if got != want {
			t.Fatalf("event line %q; want %q", got, want)
		}
	case <-time.After(clitest.Wait):
		t.Fatalf("no event line within %v; want %q", clitest.Wait, want)
	}
}

// TestServe runs opstate serve as a process of its own, with tokens, and
// checks it end to end: writes through HTTP, a write by another process
// (opstate set) reaching an event stream and changing the OFREP bulk
// ETag, the token file reloaded on SIGHUP (a refused file keeping the
// tokens before), and SIGTERM: the event stream's end event, exit 0 with
// nothing on standard error, and the Store closed (SQLite removes the
// -wal and -shm when the last connection closes).
func TestServe(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "serve.db")
	tokens := filepath.Join(dir, "tokens")
	const reader, writer, newcomer = "reader-secret", "writer-secret", "newcomer-secret"
	writeTokens(t, tokens, tokenLine("reader", "read", reader), tokenLine("writer", "write", writer))
	p, base := startServe(t, db, "-tokens", tokens)

	if code, _ := call(t, "PUT", base+"/v1/namespaces/flags/keys/dark_mode", writer, "true"); code != 204 {
		t.Fatalf("PUT = %d; want 204", code)
	}
	if code, body := call(t, "GET", base+"/v1/namespaces/flags/keys/dark_mode", reader, ""); code != 200 || body != "true" {
		t.Fatalf("GET = %d %q; want 200 true", code, body)
	}
	if code, _ := call(t, "PUT", base+"/v1/namespaces/flags/keys/dark_mode", reader, "false"); code != 403 {
		t.Fatalf("PUT with a read token = %d; want 403", code)
	}
	if code, _ := call(t, "GET", base+"/v1/namespaces", "", ""); code != 401 {
		t.Fatalf("GET without a token = %d; want 401", code)
	}

	kv := events(t, base+"/v1/namespaces/flags/events", reader)
	etag := bulkETag(t, base, reader)
	mustRun(t, db, "set", "flags", "dark_mode", "false") // another process
	expect(t, kv, `data: {"op":"set","namespace":"flags","key":"dark_mode","value":"false"}`)
	if got := bulkETag(t, base, reader); got == etag {
		t.Errorf("the bulk ETag %s did not change after opstate set", got)
	}

	// SIGHUP: the file, its reader gone and a newcomer added, is reloaded.
	writeTokens(t, tokens, tokenLine("writer", "write", writer), tokenLine("newcomer", "read", newcomer))
	p.Signal(t, syscall.SIGHUP)
	if line := p.Next(t); line != "reloaded "+tokens+": 2 tokens\n" {
		t.Fatalf("after SIGHUP: %q; want the reload", line)
	}
	if code, _ := call(t, "GET", base+"/v1/namespaces", reader, ""); code != 401 {
		t.Errorf("a removed token after SIGHUP = %d; want 401", code)
	}
	if code, _ := call(t, "GET", base+"/v1/namespaces", newcomer, ""); code != 200 {
		t.Errorf("an added token after SIGHUP = %d; want 200", code)
	}
	// The stream opened with the removed token goes on.
	mustRun(t, db, "del", "flags", "dark_mode")
	expect(t, kv, `data: {"op":"delete","namespace":"flags","key":"dark_mode"}`)
	// A file that is refused leaves the tokens as they were.
	writeTokens(t, tokens, tokenLine("reader", "read", reader), "PLAIN-SECRET")
	p.Signal(t, syscall.SIGHUP)
	p.WaitStderr(t, "reload "+tokens) // else SIGTERM may come first
	if code, _ := call(t, "GET", base+"/v1/namespaces", newcomer, ""); code != 200 {
		t.Errorf("a token after a refused reload = %d; want 200", code)
	}

	p.Signal(t, syscall.SIGTERM)
	expect(t, kv, "event: end")
	expect(t, kv, `data: {"reason":"server shutting down"}`)
	code, stderr := p.Exit(t)
	if code != 0 || !strings.Contains(stderr, "reload "+tokens) || strings.Contains(stderr, "PLAIN-SECRET") ||
		strings.Count(stderr, "\n") != 1 {
		t.Errorf("after SIGTERM: exit %d, stderr %q; want 0 and only the refused reload's line", code, stderr)
	}
	for _, f := range []string{db + "-wal", db + "-shm"} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s is there after serve exited: the Store was not closed", f)
		}
	}
}

// TestServeKill checks that PUTs answered 2xx survive SIGKILL of serve:
// each is committed before it is answered. After the kill, a new serve on
// the same file serves every one.
func TestServeKill(t *testing.T) {
	db := filepath.Join(t.TempDir(), "kill.db")
	p, base := startServe(t, db)
	const n = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[int]bool{}
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/v1/namespaces/ns/keys/k%d", base, i), strings.NewReader(fmt.Sprint("v", i)))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				resp.Body.Close()
				if resp.StatusCode == 204 {
					mu.Lock()
					acked[i] = true
					mu.Unlock()
				}
			}
		}()
	}
	// Kill it while the writes go on.
	for {
		mu.Lock()
		k := len(acked)
		mu.Unlock()
		if k >= n/2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	p.Kill(t)
	wg.Wait()
	t.Logf("%d PUTs acknowledged before SIGKILL", len(acked))
	_, base = startServe(t, db)
	for i := range acked {
		if code, body := call(t, "GET", fmt.Sprintf("%s/v1/namespaces/ns/keys/k%d", base, i), "", ""); code != 200 || body != fmt.Sprint("v", i) {
			t.Errorf("key k%d, acknowledged before SIGKILL: %d %q after restart; want 200 v%d", i, code, body, i)
		}
	}
}

// TestServeUI checks serve's -ui flag: the admin page at / by default,
// and / an unknown path with -ui=false.
func TestServeUI(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		args []string
		code int
	}{
		{nil, 200},
		{[]string{"-ui=false"}, 404},
	} {
		p, base := startServe(t, filepath.Join(dir, "ui.db"), tt.args...)
		if code, body := call(t, "GET", base+"/", "", ""); code != tt.code || (code == 200 && !strings.Contains(body, "/ui/app.js")) {
			t.Errorf("serve %v: GET / = %d %.60q; want %d", tt.args, code, body, tt.code)
		}
		p.Stop(t, syscall.SIGTERM)
	}
}
