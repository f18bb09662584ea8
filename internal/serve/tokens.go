package serve

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
)

// Scope is what a token may do.
type Scope int

const (
	// ScopeRead may read keys, namespaces, flags and events.
	ScopeRead Scope = iota + 1
	// ScopeWrite may also write: PUT and DELETE. It includes ScopeRead.
	ScopeWrite
)

// String returns "read" or "write".
func (s Scope) String() string {
	switch s {
	case ScopeRead:
		return "read"
	case ScopeWrite:
		return "write"
	}
	return fmt.Sprintf("Scope(%d)", int(s))
}

// ParseScope returns the Scope named "read" or "write", or an error
// matching [ErrTokenFile].
func ParseScope(name string) (Scope, error) {
	sc, err := parseScope(name)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrTokenFile, err)
	}
	return sc, nil
}

func parseScope(name string) (Scope, error) {
	switch name {
	case "read":
		return ScopeRead, nil
	case "write":
		return ScopeWrite, nil
	}
	return 0, fmt.Errorf("unknown scope %q (want read or write)", name)
}

// ErrTokenFile is returned by [LoadTokens] and [ParseTokens] for a token
// file they refuse, and by [NewToken] for a bad name or scope.
var ErrTokenFile = errors.New("serve: bad token file")

// MaxSecret is the length in bytes of the longest secret a request may
// present; a longer one is refused.
const MaxSecret = 256

// hashPrefix begins the third field of a token line.
const hashPrefix = "sha256:"

// A token is one line of a token file: a name, a scope and the SHA-256 of
// its secret. The secret itself is never kept.
type token struct {
	name  string
	scope Scope
	hash  [sha256.Size]byte
	// ticket is the SHA-256 of the token's event-stream ticket (see
	// [Tokens.ticket]).
	ticket [sha256.Size]byte
}

// Tokens is a parsed token file: who may call the server, and with which
// [Scope]. Its methods are safe for concurrent use; it never changes.
type Tokens struct {
	list []token
}

// Len returns how many tokens there are.
func (t *Tokens) Len() int { return len(t.list) }

// LoadTokens reads the token file at path. It refuses a file that the
// group or others may read (mode & 0o077 != 0, the file's secrets' hashes
// being as good as a password list to an offline guesser), and whatever
// [ParseTokens] refuses; errors name the path and the line.
//
// avoid names files that SQLite may hold open in this process (a
// database's file, -wal, -shm, -journal): closing any descriptor of one
// drops every POSIX lock the process holds on it, SQLite's included. A
// path that is one of them — the same path, cleaned and made absolute, or
// the same file through a link — is refused with a [*OwnFileError]
// without being opened; and should one be renamed over path between that
// check and the open, the descriptor is kept open, never closed, and
// refused the same way.
func LoadTokens(path string, avoid ...string) (*Tokens, error) {
	fi, _ := os.Stat(path)
	if err := refuseAvoided(path, fi, avoid); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTokenFile, err)
	}
	fi, err = f.Stat()
	if err == nil {
		if err := refuseAvoided(path, fi, avoid); err != nil {
			keepOpen(f)
			return nil, err
		}
	}
	defer f.Close()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTokenFile, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrTokenFile, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o, readable or writable by group or others; chmod 600 %s",
			ErrTokenFile, path, perm, path)
	}
	return ParseTokens(f, path)
}

// OwnFileError is LoadTokens' refusal of a path that is one of the files
// it was told to avoid.
type OwnFileError struct {
	Path string // the token file's path
	File string // the file to avoid it is
}

func (e *OwnFileError) Error() string {
	return fmt.Sprintf("%s is the database's file %s, or a link to it: "+
		"give a token file of its own (only SQLite may open the database's files)", e.Path, e.File)
}

// refuseAvoided returns an *OwnFileError if path, of file info fi (nil
// when it could not be stat'ed), is one of the files avoid names. Those
// are stat'ed, never opened.
func refuseAvoided(path string, fi os.FileInfo, avoid []string) error {
	for _, a := range avoid {
		same := samePath(path, a)
		if !same && fi != nil {
			afi, err := os.Stat(a)
			same = err == nil && os.SameFile(fi, afi)
		}
		if same {
			return &OwnFileError{Path: path, File: a}
		}
	}
	return nil
}

// samePath reports whether paths a and b are the same once cleaned and
// made absolute.
func samePath(a, b string) bool {
	abs := func(p string) string {
		if ap, err := filepath.Abs(p); err == nil {
			return ap
		}
		return filepath.Clean(p)
	}
	return abs(a) == abs(b)
}

// kept holds the descriptors LoadTokens opened on a file it should have
// avoided: closing one would drop the process's locks on it.
var kept struct {
	mu    sync.Mutex
	files []*os.File
}

// keepOpen keeps f open for the life of the process.
func keepOpen(f *os.File) {
	kept.mu.Lock()
	kept.files = append(kept.files, f)
	kept.mu.Unlock()
}

// ParseTokens parses a token file read from r; name names it in errors.
// Each line is "NAME SCOPE sha256:HEX", its fields separated by spaces or
// tabs, HEX being the 64 hexadecimal digits of the SHA-256 of the secret;
// a line whose first non-blank character is '#' and a blank line are
// skipped. A line of any other form — among them one holding a plain
// secret —, an unknown scope and a name given twice are refused with an
// error naming the line by its number, never quoting it, as it may hold
// a secret (but for the name given twice, on a line that is a token's). An empty file is refused too: it would let nobody in.
func ParseTokens(r io.Reader, name string) (*Tokens, error) {
	t := &Tokens{}
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 3 {
			return nil, fmt.Errorf("%w: %s:%d: want NAME SCOPE sha256:HEX, got %d fields "+
				"(a plain secret does not go in the file: its line is printed by opstate token)", ErrTokenFile, name, n, len(fields))
		}
		tok, err := parseLine(fields)
		if err != nil {
			return nil, fmt.Errorf("%w: %s:%d: %w", ErrTokenFile, name, n, err)
		}
		if first, dup := seen[tok.name]; dup {
			return nil, fmt.Errorf("%w: %s:%d: token %q is named on line %d already", ErrTokenFile, name, n, tok.name, first)
		}
		seen[tok.name] = n
		t.list = append(t.list, tok)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s:%d: %w", ErrTokenFile, name, n+1, err)
	}
	if len(t.list) == 0 {
		return nil, fmt.Errorf("%w: %s holds no token", ErrTokenFile, name)
	}
	return t, nil
}

// parseLine parses the three fields of a token line.
func parseLine(f []string) (token, error) {
	tok := token{name: f[0]}
	if err := checkName(tok.name); err != nil {
		return token{}, err
	}
	// The errors quote no field: a line that is not a token's may hold a
	// secret in any of them.
	var err error
	if tok.scope, err = parseScope(f[1]); err != nil {
		return token{}, errors.New("the second field is not a scope (read or write)")
	}
	h, ok := strings.CutPrefix(f[2], hashPrefix)
	if !ok {
		return token{}, errors.New("the third field is not sha256:HEX " +
			"(a plain secret does not go in the file: its line is printed by opstate token)")
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return token{}, errors.New("the hash is not 64 hexadecimal digits")
	}
	copy(tok.hash[:], b)
	tok.ticket = sha256.Sum256([]byte(ticketOf(tok.hash)))
	return tok, nil
}

// checkName checks a token's name: printable ASCII without spaces, not
// beginning with '#', at most 64 bytes.
func checkName(name string) error {
	if name == "" || len(name) > 64 || strings.HasPrefix(name, "#") ||
		strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return errors.New("a token name is 1 to 64 printable ASCII characters, without spaces, not beginning with #")
	}
	return nil
}

// NewToken returns a new random secret of 256 bits, written as 43
// characters of unpadded base64url, and the token-file line that admits
// it with scope: "NAME SCOPE sha256:HEX".
func NewToken(name string, scope Scope) (secret, line string, err error) {
	if err := checkName(name); err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrTokenFile, err)
	}
	if scope != ScopeRead && scope != ScopeWrite {
		return "", "", fmt.Errorf("%w: unknown scope %v", ErrTokenFile, scope)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("serve: new token: %w", err)
	}
	secret = base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(secret))
	return secret, fmt.Sprintf("%s %s %s%x", name, scope, hashPrefix, sum), nil
}

// authenticate returns the token whose secret is secret, or ok false. Its
// time does not depend on which token matches, on whether any does, on
// how much of a secret a wrong one shares, nor on the length of secret:
// it hashes secret (see hashSecret) and compares the hash with every
// token's, in constant time, without stopping at a match. With tickets,
// it compares against the tokens' event-stream tickets instead of their
// secrets.
func (t *Tokens) authenticate(secret string, tickets bool) (tok token, ok bool) {
	sum, valid := hashSecret(secret)
	found := 0
	idx := 0
	for i := range t.list {
		want := &t.list[i].hash
		if tickets {
			want = &t.list[i].ticket
		}
		eq := subtle.ConstantTimeCompare(sum[:], want[:])
		idx = subtle.ConstantTimeSelect(eq, i, idx)
		found |= eq
	}
	if found == 0 || !valid {
		return token{}, false
	}
	return t.list[idx], true
}

// maxBlocks is how many 64-byte blocks hashSecret always hashes: those of
// the longest secret, and one more for the second hash.
const maxBlocks = (MaxSecret+8)/64 + 1 + 1

// blocks returns how many 64-byte blocks SHA-256 hashes for n bytes.
func blocks(n int) int { return (n+8)/64 + 1 }

// zeros pads hashSecret's second hash.
var zeros [64 * (maxBlocks - 1)]byte

// sink keeps the second hash of hashSecret from being left out.
var sink atomic.Uint32

// hashSecret returns the SHA-256 of secret, and ok false for an empty
// secret or one longer than MaxSecret (whose first MaxSecret bytes it
// hashes). It does the same work for every secret: copied into a buffer
// of MaxSecret bytes on the stack (no allocation, whose cost would tell
// a secret of 32 bytes from a longer one), hashed, and followed by a
// second hash of zeros whose blocks make up maxBlocks in all.
func hashSecret(secret string) (sum [sha256.Size]byte, ok bool) {
	ok = len(secret) > 0 && len(secret) <= MaxSecret
	var buf [MaxSecret]byte
	n := copy(buf[:], secret)
	sum = sha256.Sum256(buf[:n])
	pad := sha256.Sum256(zeros[:64*(maxBlocks-blocks(n)-1)])
	sink.Store(uint32(pad[0]))
	return sum, ok
}

// ticketLabel separates the derivation of a ticket from anything else
// hashed with a token's hash.
const ticketLabel = "opstate serve: OFREP event stream ticket\x00"

// ticketOf returns the event-stream ticket of the token whose secret has
// the SHA-256 hash: a secret of its own, derived from the hash, that
// admits only to the OFREP event stream (see the package's Caveats).
func ticketOf(hash [sha256.Size]byte) string {
	sum := sha256.Sum256(append([]byte(ticketLabel), hash[:]...))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ticketString returns the event-stream ticket of tok.
func (tok token) ticketString() string { return ticketOf(tok.hash) }
