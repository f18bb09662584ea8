package serve_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/d8da9184/opstate/internal/serve"
)

// hashLine returns the token-file line of name, scope and secret.
func hashLine(name, scope, secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return name + " " + scope + " sha256:" + hex.EncodeToString(sum[:])
}

// TestParseTokens checks the token file's format: what it takes, and
// that each refusal names the line and never quotes a secret.
func TestParseTokens(t *testing.T) {
	good := hashLine("ci", "read", "s3cret-one")
	for _, tt := range []struct {
		name string
		file string
		err  string // "" for none; else in the error, with the line
	}{
		{"one", good + "\n", ""},
		{"comments and blanks", "# tokens\n\n  # indented\n" + good + "\n\t\n" + hashLine("ops", "write", "two") + "\n", ""},
		{"uppercase hex", "a read sha256:" + strings.ToUpper(strings.TrimPrefix(hashLine("a", "read", "x"), "a read sha256:")) + "\n", ""},
		{"no final newline", good, ""},
		{"plain secret alone", good + "\nPLAIN-SECRET-xyz\n", "bad token file: tokens:2: want NAME SCOPE sha256:HEX, got 1 fields"},
		{"plain secret as third field", "ci read PLAIN-SECRET-xyz\n", "bad token file: tokens:1: the third field is not sha256:HEX"},
		{"short hash", "ci read sha256:abcd\n", "bad token file: tokens:1: the hash is not 64"},
		{"bad hex", "ci read sha256:" + strings.Repeat("zz", 32) + "\n", "bad token file: tokens:1: the hash"},
		{"unknown scope", "# c\n" + strings.Replace(good, "read", "admin", 1) + "\n", "bad token file: tokens:2: the second field is not a scope"},
		{"duplicate", good + "\n" + hashLine("ci", "write", "other") + "\n", `tokens:2: token "ci" is named on line 1 already`},
		{"four fields", good + " PLAIN-SECRET-xyz\n", "bad token file: tokens:1: want NAME SCOPE sha256:HEX, got 4 fields"},
		{"empty", "# nothing\n", "tokens holds no token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			toks, err := serve.ParseTokens(strings.NewReader(tt.file), "tokens")
			if tt.err == "" {
				if err != nil {
					t.Fatalf("ParseTokens error: %v", err)
				}
				if toks.Len() == 0 {
					t.Fatal("ParseTokens found no token")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, serve.ErrTokenFile) {
				t.Fatalf("ParseTokens error = %v; want ErrTokenFile with %q", err, tt.err)
			}
			if strings.Contains(err.Error(), "PLAIN-SECRET") {
				t.Errorf("ParseTokens error quotes the secret: %v", err)
			}
		})
	}
}

// TestLoadTokensMode checks that a token file readable or writable by
// group or others is refused, and a private one taken.
func TestLoadTokensMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(hashLine("ci", "read", "x")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := serve.LoadTokens(path); err != nil {
		t.Fatalf("LoadTokens of a 0600 file: %v", err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o620, 0o644} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := serve.LoadTokens(path)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") || !errors.Is(err, serve.ErrTokenFile) {
			t.Errorf("LoadTokens of a %04o file: %v; want a refusal saying chmod 600", mode, err)
		}
	}
	if _, err := serve.LoadTokens(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("LoadTokens of a missing file: no error")
	}
}

// TestNewToken checks that a new token's secret has at least 128 bits of
// randomness, differs each time, and is admitted by its line.
func TestNewToken(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		secret, line, err := serve.NewToken("ci", serve.ScopeWrite)
		if err != nil {
			t.Fatal(err)
		}
		if len(secret) < 22 || seen[secret] { // 22 base64 characters hold 128 bits
			t.Fatalf("NewToken secret %q: too short or seen before", secret)
		}
		seen[secret] = true
		if want := hashLine("ci", "write", secret); line != want {
			t.Fatalf("NewToken line = %q; want %q", line, want)
		}
		toks, err := serve.ParseTokens(strings.NewReader(line), "line")
		if err != nil {
			t.Fatal(err)
		}
		if name, ok := serve.Authenticate(toks, secret); !ok || name != "ci" {
			t.Fatalf("the secret of NewToken is not admitted by its line")
		}
	}
	for _, bad := range []string{"", "two words", "#x", strings.Repeat("n", 65), "caf\u00e9"} {
		if _, _, err := serve.NewToken(bad, serve.ScopeRead); !errors.Is(err, serve.ErrTokenFile) {
			t.Errorf("NewToken(%q) error = %v; want ErrTokenFile", bad, err)
		}
	}
}
