package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/d8da9184/opstate/internal/cli/clitest"
)

// servePage is the page of docs whose Python block TestServeDocsPython
// runs.
const servePage = "../../docs/serve.md"

// printComment matches a line of the Python block that prints, at the
// top level, what its comment says it prints.
var printComment = regexp.MustCompile(`^print\(.*\)\s+# (.+)$`)

// TestServeDocsPython runs the Python block of docs/serve.md, with
// python3 (skipped without it), against opstate serve with a read token,
// and wants it to print, line by line, what the comments of its print
// lines say: the page's snippet cannot go stale unseen.
func TestServeDocsPython(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skipf("no python3: %v", err)
	}
	code, want := pythonBlock(t, servePage)
	if len(want) < 3 {
		t.Fatalf("the Python block of %s has %d print lines with the output in a comment; want at least 3", servePage, len(want))
	}

	dir := t.TempDir()
	db := filepath.Join(dir, "serve.db")
	mustRun(t, db, "set", "flags", "dark_mode", "true")
	mustRun(t, db, "set", "flags", "limits", `{"rpm":600}`)
	tokens := filepath.Join(dir, "tokens")
	const secret = "python-reader-secret"
	writeTokens(t, tokens, tokenLine("python", "read", secret))
	p, base := startServe(t, db, "-tokens", tokens)

	script := filepath.Join(dir, "snippet.py")
	if err := os.WriteFile(script, []byte(code), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*clitest.Wait)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, script)
	cmd.Env = append(os.Environ(), "OPSTATE_URL="+base, "OPSTATE_TOKEN="+secret, "PYTHONDONTWRITEBYTECODE=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("python3 %s: %v\nstdout:\n%s\nstderr:\n%s", servePage, err, stdout.String(), stderr.String())
	}
	if got, want := stdout.String(), strings.Join(want, "\n")+"\n"; got != want {
		t.Errorf("the Python block of %s printed:\n%s\nwant, as its comments say:\n%s", servePage, got, want)
	}

	// Without the token, the block fails: it sends the token it is given.
	cmd = exec.CommandContext(ctx, python, script)
	cmd.Env = append(os.Environ(), "OPSTATE_URL="+base, "OPSTATE_TOKEN=", "PYTHONDONTWRITEBYTECODE=1")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "401") {
		t.Errorf("the Python block without a token: %v, %q; want an exit with HTTP Error 401", err, out)
	}
	p.Signal(t, os.Interrupt)
	if code, stderr := p.Exit(t); code != 0 || stderr != "" {
		t.Errorf("serve after SIGINT: exit %d, stderr %q; want 0 and nothing", code, stderr)
	}
}

// pythonBlock returns the one ```python block of the Markdown page at
// path, and the comments of its print lines (printComment), in order.
func pythonBlock(t *testing.T, path string) (code string, prints []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	var cur []string
	in := false
	for line := range strings.SplitSeq(string(b), "\n") {
		switch {
		case !in && line == "```python":
			in, cur = true, nil
		case in && line == "```":
			in = false
			blocks = append(blocks, strings.Join(cur, "\n")+"\n")
		case in:
			cur = append(cur, line)
			if m := printComment.FindStringSubmatch(line); m != nil {
				prints = append(prints, m[1])
			}
		}
	}
	if len(blocks) != 1 || in {
		t.Fatalf("%s has %d complete ```python blocks (one open: %v); want one", path, len(blocks), in)
	}
	return blocks[0], prints
}
