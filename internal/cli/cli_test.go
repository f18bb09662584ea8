package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// dbPath returns the path of a database that does not exist yet, alone in a
// fresh directory.
func dbPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "test.db")
}

// runCLI runs the command in-process with the given standard input and
// returns its exit status and output.
func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(args, strings.NewReader(stdin), &out, &errOut, OpenSQLite)
	return code, out.String(), errOut.String()
}

// mustRun runs the command against db and fails the test unless it exits
// 0 with nothing on standard error. It returns standard output.
func mustRun(t *testing.T, db string, args ...string) string {
	t.Helper()
	args = append([]string{"-db", db}, args...)
	code, stdout, stderr := runCLI(t, "", args...)
	if code != exitOK || stderr != "" {
		t.Fatalf("run(%q) = %d, stderr %q; want 0 and no stderr", args, code, stderr)
	}
	return stdout
}

// mustOpen opens the store at path through the library, with clock as its
// clock when not nil, and closes it at the end of the test.
func mustOpen(t *testing.T, path string, clock func() time.Time) *opstate.Store {
	t.Helper()
	s, err := opstate.Open(path, opstate.Options{SweepInterval: -1, Clock: clock})
	if err != nil {
		t.Fatalf("Open(%q) error: %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// shifted returns a clock d away from the real one.
func shifted(d time.Duration) func() time.Time {
	return func() time.Time { return time.Now().Add(d) }
}

func TestSetGet(t *testing.T) {
	db := dbPath(t)
	mustRun(t, db, "set", "flags", "dark_mode", "on")
	args := []string{"-db", db, "get", "flags", "dark_mode"}
	code, stdout, stderr := runCLI(t, "", args...)
	if code != exitOK || stdout != "on\n" || stderr != "" {
		t.Errorf("run(%q) = %d, %q, %q; want 0, %q, \"\"", args, code, stdout, stderr, "on\n")
	}

	// Setting again replaces the value; values may begin with "-" and hold
	// spaces and newlines, and get prints them raw.
	for _, v := range []string{"off", "-1", "two words", "a\tb\nc\n", "caf\u00e9"} {
		mustRun(t, db, "set", "flags", "dark_mode", v)
		if got, want := mustRun(t, db, "get", "flags", "dark_mode"), v+"\n"; got != want {
			t.Errorf("get after set %q printed %q; want %q", v, got, want)
		}
	}
}

func TestGetMissing(t *testing.T) {
	db := dbPath(t)
	mustRun(t, db, "set", "ns", "other", "x")
	for _, args := range [][]string{
		{"-db", db, "get", "ns", "missing"},
		{"-db", db, "get", "nons", "other"},
	} {
		code, stdout, stderr := runCLI(t, "", args...)
		if code != exitFail || stdout != "" || stderr != "" {
			t.Errorf("run(%q) = %d, %q, %q; want 1, \"\", \"\"", args, code, stdout, stderr)
		}
	}
}

func TestEmptyValue(t *testing.T) {
	db := dbPath(t)
	mustRun(t, db, "set", "ns", "empty", "")
	args := []string{"-db", db, "get", "ns", "empty"}
	code, stdout, stderr := runCLI(t, "", args...)
	if code != exitOK || stdout != "\n" || stderr != "" {
		t.Errorf("run(%q) = %d, %q, %q; want 0, %q, \"\"", args, code, stdout, stderr, "\n")
	}
	if got := mustRun(t, db, "list", "ns"); got != "empty\t\n" {
		t.Errorf("list printed %q; want %q", got, "empty\t\n")
	}
}

func TestSetFromStdin(t *testing.T) {
	db := dbPath(t)
	const value = "line one\x00\xff\xfe bytes\r\n\n" // NUL, invalid UTF-8, CRLF, trailing newlines
	args := []string{"-db", db, "set", "blobs", "b", "-"}
	code, stdout, stderr := runCLI(t, value, args...)
	if code != exitOK || stdout != "" || stderr != "" {
		t.Fatalf("run(%q) = %d, %q, %q; want 0, \"\", \"\"", args, code, stdout, stderr)
	}
	if want := []string{"-db", db, "set", "blobs", "b", "-"}; !reflect.DeepEqual(args, want) {
		t.Errorf("run changed its args to %q; want %q", args, want)
	}
	got, ok, err := mustOpen(t, db, nil).Lookup("blobs", "b")
	if err != nil || !ok || got != value {
		t.Errorf("Lookup(%q, %q) = %q, %v, %v; want %q, true, nil", "blobs", "b", got, ok, err, value)
	}
	if got, want := mustRun(t, db, "get", "blobs", "b"), value+"\n"; got != want {
		t.Errorf("get printed %q; want %q", got, want)
	}

	// Empty standard input stores an empty value; "-" itself can be stored
	// through standard input.
	for _, v := range []string{"", "-"} {
		args := []string{"-db", db, "set", "blobs", "b", "-"}
		if code, _, stderr := runCLI(t, v, args...); code != exitOK {
			t.Fatalf("run(%q) with stdin %q = %d (%s); want 0", args, v, code, stderr)
		}
		if got, want := mustRun(t, db, "get", "blobs", "b"), v+"\n"; got != want {
			t.Errorf("get after set - from %q printed %q; want %q", v, got, want)
		}
	}
}

// TestSetTTLClock checks the expiry set -ttl records, moving the clock of a
// library Store instead of sleeping.
func TestSetTTLClock(t *testing.T) {
	db := dbPath(t)
	mustRun(t, db, "set", "-ttl", "1h", "locks", "deploy", "alice")
	mustRun(t, db, "set", "locks", "forever", "bob")
	for _, tt := range []struct {
		shift  time.Duration
		key    string
		wantOK bool
	}{
		{0, "deploy", true},
		{59 * time.Minute, "deploy", true},
		{61 * time.Minute, "deploy", false},
		{100 * 365 * 24 * time.Hour, "forever", true},
	} {
		s := mustOpen(t, db, shifted(tt.shift))
		if _, ok, err := s.Lookup("locks", tt.key); err != nil || ok != tt.wantOK {
			t.Errorf("at now+%v: Lookup(%q, %q) = _, %v, %v; want %v, nil", tt.shift, "locks", tt.key, ok, err, tt.wantOK)
		}
		s.Close()
	}

	// set without -ttl clears the expiry.
	mustRun(t, db, "set", "locks", "deploy", "carol")
	if _, ok, err := mustOpen(t, db, shifted(2*time.Hour)).Lookup("locks", "deploy"); err != nil || !ok {
		t.Errorf("after set without -ttl, at now+2h: Lookup = _, %v, %v; want true, nil", ok, err)
	}
}

// TestSetTTLExpires checks with the real clock that a key set with a short
// ttl is gone for a later run.
func TestSetTTLExpires(t *testing.T) {
	db := dbPath(t)
	mustRun(t, db, "set", "-ttl", "50ms", "locks", "deploy", "alice")
	time.Sleep(100 * time.Millisecond)
	args := []string{"-db", db, "get", "locks", "deploy"}
	if code, stdout, stderr := runCLI(t, "", args...); code != exitFail || stdout != "" || stderr != "" {
		t.Errorf("run(%q) after expiry = %d, %q, %q; want 1, \"\", \"\"", args, code, stdout, stderr)
	}
	if got := mustRun(t, db, "list", "locks"); got != "" {
		t.Errorf("list after expiry printed %q; want \"\"", got)
	}
}

func TestDel(t *testing.T) {
	db := dbPath(t)
	mustRun(t, db, "set", "ns", "a", "1")
	mustRun(t, db, "set", "ns", "b", "2")
	mustRun(t, db, "del", "ns", "a")
	if code, stdout, _ := runCLI(t, "", "-db", db, "get", "ns", "a"); code != exitFail || stdout != "" {
		t.Errorf("get after del = %d, %q; want 1, \"\"", code, stdout)
	}
	if got := mustRun(t, db, "get", "ns", "b"); got != "2\n" {
		t.Errorf("get of the other key printed %q; want %q", got, "2\n")
	}
	mustRun(t, db, "del", "ns", "a")      // already gone: not an error
	mustRun(t, db, "del", "nowhere", "x") // nor is a missing namespace
}

func TestDrop(t *testing.T) {
	db := dbPath(t)
	mustRun(t, db, "set", "ns1", "a", "1")
	mustRun(t, db, "set", "ns1", "b", "2")
	mustRun(t, db, "set", "ns2", "a", "3")
	mustRun(t, db, "drop", "ns1")
	if got := mustRun(t, db, "list", "ns1"); got != "" {
		t.Errorf("list ns1 after drop printed %q; want \"\"", got)
	}
	if got := mustRun(t, db, "list", "ns2"); got != "a\t3\n" {
		t.Errorf("list ns2 after drop ns1 printed %q; want %q", got, "a\t3\n")
	}
	mustRun(t, db, "drop", "nowhere") // a missing namespace is not an error
}

// listData holds values the text output must quote, and some it must not.
var listData = map[string]string{
	"b":      "two\tcols",
	"a":      "plain value",
	"c":      "line1\nline2\n",
	"d":      `"quoted"`,
	"d2":     `mid"quote`,
	"e":      "bad\xffutf8",
	"f\tkey": "x",
	"g":      "",
	"h":      "caf\u00e9 \u263a",
	"i":      "nb\u00a0sp", // no-break space: not printable per strconv.IsPrint
	"j":      "nul\x00",
}

func setAll(t *testing.T, db, ns string, m map[string]string) {
	t.Helper()
	s := mustOpen(t, db, nil)
	for k, v := range m {
		if err := s.Set(ns, k, v); err != nil {
			t.Fatalf("Set(%q, %q, %q) error: %v", ns, k, v, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close error: %v", err)
	}
}

func TestListText(t *testing.T) {
	db := dbPath(t)
	setAll(t, db, "ns", listData)
	mustRun(t, db, "set", "other", "zz", "not listed")
	got := mustRun(t, db, "list", "ns")
	want := `a	plain value
b	"two\tcols"
c	"line1\nline2\n"
d	"\"quoted\""
d2	mid"quote
e	"bad\xffutf8"
"f\tkey"	x
g	
h	café ☺
i	"nb\u00a0sp"
j	"nul\x00"
`
	if got != want {
		t.Errorf("list printed\n%s\nwant\n%s", got, want)
	}

	// Every line has one tab, and unquoting gives back the exact bytes.
	back := map[string]string{}
	for line := range strings.Lines(got) {
		k, v, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "\t")
		if !ok || strings.Contains(v, "\t") {
			t.Fatalf("line %q does not have exactly one tab", line)
		}
		back[unquoteField(t, k)] = unquoteField(t, v)
	}
	if !reflect.DeepEqual(back, listData) {
		t.Errorf("list output read back as %q; want %q", back, listData)
	}
}

func unquoteField(t *testing.T, s string) string {
	t.Helper()
	if !strings.HasPrefix(s, `"`) {
		return s
	}
	u, err := strconv.Unquote(s)
	if err != nil {
		t.Fatalf("Unquote(%q) error: %v", s, err)
	}
	return u
}

func TestListJSON(t *testing.T) {
	db := dbPath(t)
	for _, tt := range []struct {
		name string
		data map[string]string
		want string
	}{
		{"empty", nil, "{}\n"},
		{"sorted, HTML not escaped", map[string]string{"b": "<x&y>", "a": "1", "c": ""},
			`{"a":"1","b":"<x&y>","c":""}` + "\n"},
		{"control characters escaped", map[string]string{"k": "nul\x00", "t": "tab\tnl\n"},
			`{"k":"nul\u0000","t":"tab\tnl\n"}` + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			setAll(t, db, tt.name, tt.data)
			args := []string{"-db", db, "list", "-json", tt.name}
			code, stdout, stderr := runCLI(t, "", args...)
			if code != exitOK || stdout != tt.want || stderr != "" {
				t.Errorf("run(%q) = %d, %q, %q; want 0, %q, \"\"", args, code, stdout, stderr, tt.want)
			}
		})
	}

	// A listing of valid UTF-8 decodes to exactly the stored keys and
	// values, whatever characters they hold.
	valid := map[string]string{}
	for k, v := range listData {
		if k != "e" { // the one value of listData that is not valid UTF-8
			valid[k] = v
		}
	}
	valid[`"quoted key"`] = "v"
	valid["nl\nkey"] = "tab\tvalue"
	valid["nul\x00key"] = "\x00"
	valid["emoji \U0001F600"] = "\U0001F680 \u2028\u2029"
	valid["back\\slash"] = `\"\\`
	setAll(t, db, "all", valid)
	var got map[string]string
	out := mustRun(t, db, "list", "-json", "all")
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("list -json printed %q, not JSON: %v", out, err)
	}
	if !reflect.DeepEqual(got, valid) {
		t.Errorf("list -json decoded to %q; want %q", got, valid)
	}
	if strings.Count(out, "\n") != 1 {
		t.Errorf("list -json printed %q; want one line", out)
	}
}

// TestListJSONInvalidUTF8 checks that list -json is exact or absent: a key
// or value that is not valid UTF-8, which encoding/json would replace with
// U+FFFD (merging distinct keys into one repeated name), makes it print
// nothing, name the first such key and exit 1, while the text output still
// shows every key exactly.
func TestListJSONInvalidUTF8(t *testing.T) {
	db := dbPath(t)
	for _, tt := range []struct {
		name     string
		data     map[string]string
		wantErr  string // in the message, besides the pointer to the text output
		wantText string
	}{
		{"keys differing in invalid bytes", map[string]string{"a\xff": "1", "a\xfe": "2"},
			"key " + strconv.Quote("a\xfe"), "\"a\\xfe\"\t2\n\"a\\xff\"\t1\n"},
		{"first of several in key order", map[string]string{"a": "ok", "c\xff": "1", "b": "x\x80y", "d": "\xfe"},
			"value of key " + strconv.Quote("b"), "a\tok\nb\t\"x\\x80y\"\n\"c\\xff\"\t1\nd\t\"\\xfe\"\n"},
		{"surrogate half", map[string]string{"s\xed\xa0\x80": "v"},
			"key " + strconv.Quote("s\xed\xa0\x80"), "\"s\\xed\\xa0\\x80\"\tv\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			setAll(t, db, tt.name, tt.data)
			args := []string{"-db", db, "list", "-json", tt.name}
			code, stdout, stderr := runCLI(t, "", args...)
			if code != exitFail || stdout != "" ||
				!strings.Contains(stderr, tt.wantErr) || !strings.Contains(stderr, "list without -json") {
				t.Errorf("run(%q) = %d, stdout %q, stderr %q; want 1, \"\", a message naming %s and the text output",
					args, code, stdout, stderr, tt.wantErr)
			}
			if got := mustRun(t, db, "list", tt.name); got != tt.wantText {
				t.Errorf("list %q printed %q; want %q", tt.name, got, tt.wantText)
			}
		})
	}
}

func TestNamespaces(t *testing.T) {
	db := dbPath(t)
	mustOpen(t, db, nil).Close() // an empty database: ns refuses a missing one
	if got := mustRun(t, db, "ns"); got != "" {
		t.Errorf("ns on an empty database printed %q; want \"\"", got)
	}
	mustRun(t, db, "set", "b", "k1", "v")
	mustRun(t, db, "set", "a", "k1", "v")
	mustRun(t, db, "set", "a", "k2", "v")
	mustRun(t, db, "set", "tab\tns", "k", "v")
	s := mustOpen(t, db, shifted(-time.Hour))
	if err := s.SetWithTTL("a", "expired", "v", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.SetWithTTL("c", "expired", "v", time.Minute); err != nil {
		t.Fatal(err)
	}
	s.Close()
	want := "a\t2\nb\t1\n\"tab\\tns\"\t1\n"
	if got := mustRun(t, db, "ns"); got != want {
		t.Errorf("ns printed %q; want %q", got, want)
	}
}

func TestSweep(t *testing.T) {
	db := dbPath(t)
	mustOpen(t, db, nil).Close() // an empty database: sweep refuses a missing one
	if got := mustRun(t, db, "sweep"); got != "0\n" {
		t.Errorf("sweep on an empty database printed %q; want %q", got, "0\n")
	}
	// Keys whose expiry has passed, written with a clock an hour slow.
	s := mustOpen(t, db, shifted(-time.Hour))
	for _, k := range []string{"x", "y", "z"} {
		if err := s.SetWithTTL("ns", k, "v", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetWithTTL("ns", "later", "v", 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("ns", "live", "v"); err != nil {
		t.Fatal(err)
	}
	s.Close()

	if got := mustRun(t, db, "sweep"); got != "3\n" {
		t.Errorf("sweep printed %q; want %q", got, "3\n")
	}
	if got := mustRun(t, db, "sweep"); got != "0\n" {
		t.Errorf("second sweep printed %q; want %q", got, "0\n")
	}
	if got := mustRun(t, db, "list", "ns"); got != "later\tv\nlive\tv\n" {
		t.Errorf("list after sweep printed %q; want %q", got, "later\tv\nlive\tv\n")
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frob"},
		{"-x", "ns"},
		{"-db"},
		{"-db", "", "ns"},
		{"-ttl", "1h", "set", "ns", "k", "v"},
		{"get"},
		{"get", "ns"},
		{"get", "ns", "k", "extra"},
		{"get", "", "k"},
		{"get", "ns", ""},
		{"get", "-json", "ns", "k"},
		{"set", "ns", "k"},
		{"set", "ns", "k", "v", "extra"},
		{"set", "", "k", "v"},
		{"set", "ns", "", "v"},
		{"set", "ns", "", "-"},
		{"set", "ns", "k", "v", "-ttl", "1h"},
		{"set", "-ttl", "0", "ns", "k", "v"},
		{"set", "-ttl", "0s", "ns", "k", "v"},
		{"set", "-ttl", "-1s", "ns", "k", "v"},
		{"set", "-ttl", "soon", "ns", "k", "v"},
		{"set", "-ttl", "10", "ns", "k", "v"},
		{"set", "-ttl=", "ns", "k", "v"},
		{"set", "-ttl"},
		{"del", "ns"},
		{"del", "ns", "k", "extra"},
		{"del", "", "k"},
		{"del", "ns", ""},
		{"drop"},
		{"drop", "a", "b"},
		{"drop", ""},
		{"list"},
		{"list", "a", "b"},
		{"list", ""},
		{"list", "-json"},
		{"list", "-json", ""},
		{"list", "-json=maybe", "ns"},
		{"ns", "extra"},
		{"sweep", "extra"},
		{"help", "get"},
	} {
		db := dbPath(t)
		args := append([]string{"-db", db}, args...)
		if len(args) > 2 && args[2] == "-db" {
			args = args[2:] // the case is about -db itself
		}
		code, stdout, stderr := runCLI(t, "stdin value", args...)
		if code != exitUsage || stdout != "" || stderr == "" {
			t.Errorf("run(%q) = %d, stdout %q, stderr %q; want %d, \"\", a message", args, code, stdout, stderr, exitUsage)
		}
		assertNoFiles(t, filepath.Dir(db), args)
	}
}

// dirNames returns the names of what dir holds, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// assertNoFiles fails the test if dir holds anything.
func assertNoFiles(t *testing.T, dir string, args []string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("run(%q) created %s", args, e.Name())
	}
}

func TestUsageErrorNoDefaultDB(t *testing.T) {
	// With no -db, a usage error must not create ./opstate.db either. The
	// working directory is the package's, so check that the file is not
	// there afterwards unless it was before.
	_, statErr := os.Stat(defaultDB)
	existed := statErr == nil
	if code, _, _ := runCLI(t, "", "get", "ns"); code != exitUsage {
		t.Errorf("run(%q) = %d; want %d", []string{"get", "ns"}, code, exitUsage)
	}
	if _, err := os.Stat(defaultDB); err == nil && !existed {
		os.Remove(defaultDB)
		t.Errorf("usage error created %s", defaultDB)
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"-h"},
		{"-help"},
		{"--help"},
		{"help"},
		{"-db", "x.db", "-h"},
		{"get", "-h"},
		{"set", "-help"},
		{"list", "-h", "ns"},
	} {
		dir := t.TempDir()
		args := append([]string{"-db", filepath.Join(dir, "test.db")}, args...)
		code, stdout, stderr := runCLI(t, "", args...)
		if code != exitOK || !strings.HasPrefix(stdout, "usage: opstate") || stderr != "" {
			t.Errorf("run(%q) = %d, stdout %q, stderr %q; want 0, usage, \"\"", args, code, stdout, stderr)
		}
		assertNoFiles(t, dir, args)
	}
	// The usage mentions every verb, and how to name a PostgreSQL
	// database and which command speaks it.
	_, stdout, _ := runCLI(t, "", "help")
	for _, v := range verbs {
		if !strings.Contains(stdout, "\n  "+v.synopsis()+"\n") {
			t.Errorf("usage does not show %q:\n%s", v.synopsis(), stdout)
		}
	}
	for _, want := range []string{"-db PATH|URL", "postgres://", "\n  " + DBEnv + "\n", "cd pgstate && go install ./cmd/opstate"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("usage does not mention %q:\n%s", want, stdout)
		}
	}
}

// TestMissingDatabase checks that only set creates the database: every
// other verb, run on a path that holds nothing, fails with a message that
// names the path, prints nothing on standard output and creates nothing,
// no database and no -wal, -shm or -journal file, so that a mistyped -db
// is not mistaken for a missing key.
func TestMissingDatabase(t *testing.T) {
	others := [][]string{
		{"get", "flags", "x"},
		{"list", "flags"},
		{"list", "-json", "flags"},
		{"ns"},
		{"del", "flags", "x"},
		{"drop", "flags"},
		{"sweep"},
	}
	for _, verb := range others {
		dir := t.TempDir()
		db := filepath.Join(dir, "typo.db")
		args := append([]string{"-db", db}, verb...)
		code, stdout, stderr := runCLI(t, "", args...)
		if code != exitFail || stdout != "" || !strings.Contains(stderr, db) {
			t.Errorf("run(%q) = %d, stdout %q, stderr %q; want 1, \"\", a message naming %s", args, code, stdout, stderr, db)
		}
		assertNoFiles(t, dir, args)
	}

	// The default path too, in the working directory.
	t.Chdir(t.TempDir())
	args := []string{"get", "flags", "x"}
	code, stdout, stderr := runCLI(t, "", args...)
	if code != exitFail || stdout != "" || !strings.Contains(stderr, defaultDB) {
		t.Errorf("run(%q) = %d, stdout %q, stderr %q; want 1, \"\", a message naming %s", args, code, stdout, stderr, defaultDB)
	}
	assertNoFiles(t, ".", args)

	// set creates the database, mode 0600 as the library does; then the
	// other verbs run on it.
	db := dbPath(t)
	mustRun(t, db, "set", "flags", "x", "on")
	fi, err := os.Stat(db)
	if err != nil {
		t.Fatalf("set did not create the database: %v", err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("set created the database with mode %v; want %v", got, os.FileMode(0o600))
	}
	for _, verb := range others {
		mustRun(t, db, verb...)
	}
}

func TestOpenFailures(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "notes.txt")
	const notes = "not an SQLite database, just notes\n"
	if err := os.WriteFile(notDB, []byte(notes), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, db string
	}{
		{"directory", dir},
		{"missing directory", filepath.Join(dir, "nope", "test.db")},
		{"not a database", notDB},
	} {
		for _, verb := range [][]string{{"get", "ns", "k"}, {"set", "ns", "k", "v"}, {"ns"}} {
			args := append([]string{"-db", tt.db}, verb...)
			code, stdout, stderr := runCLI(t, "", args...)
			if code != exitFail || stdout != "" || stderr == "" {
				t.Errorf("%s: run(%q) = %d, stdout %q, stderr %q; want 1, \"\", a message", tt.name, args, code, stdout, stderr)
			}
		}
	}
	if b, err := os.ReadFile(notDB); err != nil || string(b) != notes {
		t.Errorf("not-a-database file now holds %q, %v; want %q unchanged", b, err, notes)
	}
	if _, err := os.Stat(filepath.Join(dir, "nope")); err == nil {
		t.Errorf("the missing directory was created")
	}
}

// TestClosed checks that each run closes the store: SQLite removes the
// write-ahead log when the last connection closes.
func TestClosed(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "test.db")
	for _, args := range [][]string{
		{"set", "ns", "k", "v"},
		{"get", "ns", "k"},
		{"get", "ns", "missing"},
		{"list", "ns"},
		{"sweep"},
	} {
		args := append([]string{"-db", db}, args...)
		runCLI(t, "", args...)
		if names := dirNames(t, dir); !reflect.DeepEqual(names, []string{"test.db"}) {
			t.Errorf("after run(%q), directory holds %q; want only test.db", args, names)
		}
	}
}

// TestDefaultDB checks where the database is: -db, else OPSTATE_DB when
// it is not empty, else ./opstate.db.
func TestDefaultDB(t *testing.T) {
	if defaultDB != "./opstate.db" {
		t.Errorf("defaultDB = %q; want %q", defaultDB, "./opstate.db")
	}
	for _, tt := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"get", "flags", "dark_mode"}, "", defaultDB},
		{[]string{"-db", "/tmp/x.db", "get", "flags", "dark_mode"}, "", "/tmp/x.db"},
		{[]string{"get", "flags", "dark_mode"}, "/tmp/env.db", "/tmp/env.db"},
		{[]string{"-db", "/tmp/x.db", "get", "flags", "dark_mode"}, "/tmp/env.db", "/tmp/x.db"},
		{[]string{"get", "flags", "dark_mode"}, "postgres://u@h/db", "postgres://u@h/db"},
		{[]string{"-db", "postgresql://u@h/db", "get", "flags", "dark_mode"}, "/tmp/env.db", "postgresql://u@h/db"},
	} {
		inv, err := parse(tt.args, tt.env)
		var got string
		if inv != nil {
			got = inv.db
		}
		if err != nil || got != tt.want {
			t.Errorf("parse(%q) with %s=%q: db %q, err %v; want %q, nil", tt.args, DBEnv, tt.env, got, err, tt.want)
		}
	}
}

// TestBackupVerb copies a database with backup: the copy holds the same
// keys and mode 0600, and a DEST that exists is refused, left as it was,
// with exit status 1.
func TestBackupVerb(t *testing.T) {
	db := dbPath(t)
	mustRun(t, db, "set", "flags", "dark_mode", "on")
	mustRun(t, db, "set", "flags", "beta", "off")
	dest := filepath.Join(t.TempDir(), "copy.db")
	if got := mustRun(t, db, "backup", dest); got != "" {
		t.Errorf("backup printed %q; want nothing", got)
	}
	if fi, err := os.Stat(dest); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file: %v, %v; want mode 0600", fi, err)
	}
	if got, want := mustRun(t, dest, "list", "flags"), "beta\toff\ndark_mode\ton\n"; got != want {
		t.Errorf("list of the copy = %q; want %q", got, want)
	}
	code, stdout, stderr := runCLI(t, "", "-db", db, "backup", dest)
	if code != exitFail {
		t.Errorf("backup onto an existing file exited %d; want %d", code, exitFail)
	}
	if stdout != "" || !strings.Contains(stderr, "exists") {
		t.Errorf("backup onto an existing file: stdout %q, stderr %q; want nothing and a message saying it exists", stdout, stderr)
	}
	if got, want := mustRun(t, dest, "list", "flags"), "beta\toff\ndark_mode\ton\n"; got != want {
		t.Errorf("list of the copy after the refused backup = %q; want %q", got, want)
	}
}

// TestSpecialPaths checks that -db :memory:, an in-memory database that
// would be gone when the command exits, and -db paths beginning with
// "file:", which SQLite reads as URIs, are bad usage and create nothing;
// and that ./:memory: is a file like any other.
func TestSpecialPaths(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, db := range []string{":memory:", "file:x.db", "file::memory:", "file:x.db?mode=memory"} {
		for _, verb := range [][]string{{"set", "ns", "k", "v"}, {"get", "ns", "k"}, {"ns"}, {"backup", "copy.db"}} {
			args := append([]string{"-db", db}, verb...)
			code, stdout, stderr := runCLI(t, "", args...)
			if code != exitUsage || stdout != "" || !strings.Contains(stderr, db) {
				t.Errorf("run(%q) = %d, stdout %q, stderr %q; want %d, \"\", a message naming %s", args, code, stdout, stderr, exitUsage, db)
			}
			assertNoFiles(t, dir, args)
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				os.Remove(e.Name()) // what the run left, which no connection holds now
			}
		}
	}
	mustRun(t, "./:memory:", "set", "ns", "k", "v")
	if got := mustRun(t, "./:memory:", "get", "ns", "k"); got != "v\n" {
		t.Errorf("get from ./:memory: printed %q; want %q", got, "v\n")
	}
	if fi, err := os.Stat(filepath.Join(dir, ":memory:")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("-db ./:memory: made %v, %v; want the file :memory:", fi, err)
	}
}
