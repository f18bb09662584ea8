package cli

import (
	"database/sql"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// stamps matches the times history prints, which tests replace with a
// placeholder of the same width so that the table keeps its alignment.
var stamps = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`)

// timeless returns s with every time history prints replaced.
func timeless(s string) string { return stamps.ReplaceAllString(s, "YYYY-MM-DDThh:mm:ss.sssZ") }

// usageCase is a command line that is bad usage, and what the message
// must say.
type usageCase struct {
	args []string
	msg  string
}

// wantUsage runs each case on db and wants exit 2, the message on
// standard error, and nothing on standard output.
func wantUsage(t *testing.T, db string, cases []usageCase) {
	t.Helper()
	for _, tt := range cases {
		args := append([]string{"-db", db}, tt.args...)
		code, stdout, stderr := runCLI(t, "", args...)
		if code != exitUsage || stdout != "" || !strings.Contains(stderr, tt.msg) {
			t.Errorf("run(%q) = %d, %q, %q; want 2 and a message with %q", args, code, stdout, stderr, tt.msg)
		}
	}
}

// TestHistoryKeep checks history-keep: N turns a namespace's history on
// and sets its keep, 0 turns it off, and without arguments it lists the
// namespaces that keep history, sorted, names quoted as list quotes them;
// bad arguments are bad usage and change nothing.
func TestHistoryKeep(t *testing.T) {
	db := dbPath(t)
	mustRun(t, db, "set", "ns", "k", "v")
	if got := mustRun(t, db, "history-keep"); got != "" {
		t.Errorf("history-keep on a new database printed %q; want nothing", got)
	}
	for _, tt := range []struct{ ns, n string }{
		{"flags", "100"},
		{"-dash", "5"},
		{"tab\tname", "7"},
		{"bin\xffary", "1"},
		{`"quoted`, "3"},
		{"sp ace", "2"},
		{"off", "4"},
	} {
		mustRun(t, db, "history-keep", "--", tt.ns, tt.n)
	}
	mustRun(t, db, "history-keep", "off", "0")
	mustRun(t, db, "history-keep", "flags", "+20") // changes the keep
	want := "\"\\\"quoted\"\t3\n-dash\t5\n\"bin\\xffary\"\t1\nflags\t20\nsp ace\t2\n\"tab\\tname\"\t7\n"
	if got := mustRun(t, db, "history-keep"); got != want {
		t.Errorf("history-keep printed\n%q; want\n%q", got, want)
	}
	wantUsage(t, db, []usageCase{
		{[]string{"history-keep", "flags"}, "want NS and N, or no arguments"},
		{[]string{"history-keep", "flags", "-1"}, `a keep of "-1" is not a number`},
		{[]string{"history-keep", "flags", "x"}, `a keep of "x" is not a number`},
		{[]string{"history-keep", "flags", "1.5"}, `a keep of "1.5" is not a number`},
		{[]string{"history-keep", "flags", "99999999999999999999"}, "is not a number"},
		{[]string{"history-keep", "flags", ""}, "empty N"},
		{[]string{"history-keep", "", "3"}, "empty NS"},
		{[]string{"history-keep", "flags", "1", "2"}, "want 0 to 2 arguments, got 3"},
	})
	if got := mustRun(t, db, "history-keep"); got != want {
		t.Errorf("after bad usage, history-keep printed\n%q; want\n%q", got, want)
	}
}

// TestHistory checks the table and the JSON of history: who made each
// change (-actor, the OS user by default, sql for plain SQL), the values
// before and after, quoted, the expiry, newest first, -n, a key's changes
// alone; -json exact or absent; a namespace without history; bad usage.
func TestHistory(t *testing.T) {
	db := dbPath(t)
	mustRun(t, db, "set", "h", "seed", "before history") // not recorded
	mustRun(t, db, "history-keep", "h", "10")
	mustRun(t, db, "-actor", "alice", "set", "h", "k", "v1")
	mustRun(t, db, "-actor", "bob smith", "set", "-ttl", "1h", "h", "k", "two words")
	raw, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	_, err = raw.Exec(`UPDATE operational_state SET value = 'by hand' WHERE namespace = 'h' AND key = 'k'`)
	raw.Close()
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, db, "-actor", "alice", "set", "--", "h", "tab\tkey", "x\xffy")
	mustRun(t, db, "del", "h", "k") // the OS user
	user := osUser()
	if user == "" {
		t.Skip("no OS user name to check the default actor against")
	}
	pad := func(s string, n int) string { return s + strings.Repeat(" ", n-len(s)) }
	w := max(len("bob smith"), len(user), len("ACTOR")) + 2
	const ts = "YYYY-MM-DDThh:mm:ss.sssZ  "
	table := "SEQ  TIME                      " + pad("ACTOR", w) + "OP      KEY         CHANGE                   EXPIRES\n" +
		"5    " + ts + pad(user, w) + `delete  k           "by hand" → absent       -` + "\n" +
		"4    " + ts + pad("alice", w) + `set     "tab\tkey"  absent → "x\xffy"        never` + "\n" +
		"3    " + ts + pad("sql", w) + `set     k           "two words" → "by hand"  YYYY-MM-DDThh:mm:ss.sssZ` + "\n" +
		"2    " + ts + pad("bob smith", w) + `set     k           "v1" → "two words"       YYYY-MM-DDThh:mm:ss.sssZ` + "\n" +
		"1    " + ts + pad("alice", w) + `set     k           absent → "v1"            never` + "\n"
	if got := timeless(mustRun(t, db, "history", "h")); got != table {
		t.Errorf("history h printed\n%s\nwant\n%s", got, table)
	}
	// The columns are as wide as the rows printed need.
	seqs := func(table string) []string {
		var s []string
		for line := range strings.Lines(table) {
			s = append(s, strings.Fields(line)[0])
		}
		return s
	}
	if got, want := seqs(mustRun(t, db, "history", "-n", "2", "h")), []string{"SEQ", "5", "4"}; !slices.Equal(got, want) {
		t.Errorf("history -n 2 h printed the rows %q; want %q", got, want)
	}
	if got, want := mustRun(t, db, "history", "h", "nokey"), "SEQ  TIME  ACTOR  OP  KEY  CHANGE  EXPIRES\n"; got != want {
		t.Errorf("history of a key without changes printed %q; want the header alone, %q", got, want)
	}

	const T = "YYYY-MM-DDThh:mm:ss.sssZ"
	wantJSON := `[{"seq":5,"time":"` + T + `","namespace":"h","key":"k","op":"delete","actor":"` + user + `","before":"by hand","beforeExpires":"` + T + `"},` +
		`{"seq":3,"time":"` + T + `","namespace":"h","key":"k","op":"set","actor":"sql","before":"two words","beforeExpires":"` + T + `","after":"by hand","expires":"` + T + `"},` +
		`{"seq":2,"time":"` + T + `","namespace":"h","key":"k","op":"set","actor":"bob smith","before":"v1","after":"two words","expires":"` + T + `"},` +
		`{"seq":1,"time":"` + T + `","namespace":"h","key":"k","op":"set","actor":"alice","after":"v1"}]` + "\n"
	if got := timeless(mustRun(t, db, "history", "-json", "h", "k")); got != wantJSON {
		t.Errorf("history -json h k printed\n%s\nwant\n%s", got, wantJSON)
	}

	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{[]string{"history", "-json", "h"}, `history -json "h": change 4: the value after is not valid UTF-8`},
		{[]string{"history", "nohistory"}, "keeps no history"},
		{[]string{"history", "-n", "1", "--", "-dash"}, "keeps no history"},
	} {
		args := append([]string{"-db", db}, tt.args...)
		code, stdout, stderr := runCLI(t, "", args...)
		if code != exitFail || stdout != "" || !strings.Contains(stderr, tt.msg) {
			t.Errorf("run(%q) = %d, %q, %q; want 1, nothing printed, and a message with %q", args, code, stdout, stderr, tt.msg)
		}
	}
	wantUsage(t, db, []usageCase{
		{[]string{"history", "-n", "0", "h"}, "-n 0 is not a positive number"},
		{[]string{"history", "-n", "-3", "h"}, "-n -3 is not a positive number"},
		{[]string{"history", "-n", "x", "h"}, "invalid value"},
		{[]string{"history"}, "want 1 to 2 arguments, got 0"},
		{[]string{"history", "h", "k", "extra"}, "want 1 to 2 arguments, got 3"},
		{[]string{"history", "", "k"}, "empty NS"},
		{[]string{"-actor", "", "set", "h", "k", "v"}, "empty actor"},
		{[]string{"-actor", "a\nb", "set", "h", "k", "v"}, "control character"},
		{[]string{"-actor", "a\xffb", "set", "h", "k", "v"}, "not valid UTF-8"},
		{[]string{"-actor", strings.Repeat("a", 257), "set", "h", "k", "v"}, "longer than 256 bytes"},
	})
	if got := timeless(mustRun(t, db, "history", "h")); got != table {
		t.Errorf("after bad usage, history h printed\n%s\nwant\n%s", got, table)
	}
	// A long actor that is good, and one with spaces and letters beyond
	// ASCII, are taken as they are.
	long := strings.Repeat("é", 128) // 256 bytes
	mustRun(t, db, "-actor", long, "set", "h", "k", "long")
	if got := mustRun(t, db, "history", "-json", "-n", "1", "h", "k"); !strings.Contains(got, `"actor":"`+long+`"`) {
		t.Errorf("history after -actor of 256 bytes printed %q", got)
	}
}

// TestRevert checks revert: back to a change that set a value (with its
// expiry) or deleted the key, recorded as the run's actor; a revert to the
// latest change writes nothing; an unknown SEQ, a change of another key
// and a namespace without history fail, changing nothing; a key changed
// without its history knowing (history off meanwhile) is a conflict that
// says what the key holds; bad SEQs are bad usage.
func TestRevert(t *testing.T) {
	db := dbPath(t)
	mustRun(t, db, "set", "r", "other", "o")
	mustRun(t, db, "history-keep", "r", "20")
	mustRun(t, db, "set", "--", "r", "-dash", "a")               // 1
	mustRun(t, db, "set", "--", "r", "-dash", "b")               // 2
	mustRun(t, db, "del", "--", "r", "-dash")                    // 3
	mustRun(t, db, "set", "-ttl", "1h", "--", "r", "-dash", "c") // 4
	mustRun(t, db, "set", "r", "other", "p")                     // 5

	get := func() (string, bool) {
		t.Helper()
		code, stdout, stderr := runCLI(t, "", "-db", db, "get", "--", "r", "-dash")
		if stderr != "" || code == exitFail && stdout != "" {
			t.Fatalf("get = %d, %q, %q", code, stdout, stderr)
		}
		return strings.TrimSuffix(stdout, "\n"), code == exitOK
	}
	latest := func() string {
		t.Helper()
		return timeless(mustRun(t, db, "history", "-json", "-n", "1", "--", "r", "-dash"))
	}
	const T = "YYYY-MM-DDThh:mm:ss.sssZ"

	mustRun(t, db, "-actor", "carol", "revert", "--", "r", "-dash", "2")
	if v, ok := get(); !ok || v != "b" {
		t.Errorf("after revert to 2, get = %q, %v; want b", v, ok)
	}
	want := `[{"seq":6,"time":"` + T + `","namespace":"r","key":"-dash","op":"set","actor":"carol","before":"c","beforeExpires":"` + T + `","after":"b"}]` + "\n"
	if got := latest(); got != want {
		t.Errorf("after revert to 2, the latest change is\n%s\nwant\n%s", got, want)
	}
	mustRun(t, db, "-actor", "dave", "revert", "--", "r", "-dash", "3")
	if v, ok := get(); ok {
		t.Errorf("after revert to 3 (a delete), get = %q; want no key", v)
	}
	mustRun(t, db, "-actor", "erin", "revert", "--", "r", "-dash", "4")
	if v, ok := get(); !ok || v != "c" {
		t.Errorf("after revert to 4, get = %q, %v; want c", v, ok)
	}
	want = `[{"seq":8,"time":"` + T + `","namespace":"r","key":"-dash","op":"set","actor":"erin","after":"c","expires":"` + T + `"}]` + "\n"
	if got := latest(); got != want {
		t.Errorf("after revert to 4, the latest change is\n%s\nwant\n%s (with 4's expiry)", got, want)
	}
	mustRun(t, db, "revert", "--", "r", "-dash", "8") // the latest: nothing to do
	if got := latest(); got != want {
		t.Errorf("after revert to the latest change, the latest change is\n%s\nwant it unchanged\n%s", got, want)
	}

	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{[]string{"revert", "--", "r", "-dash", "99"}, `revert "r"/"-dash" to change 99: no such change`},
		{[]string{"revert", "--", "r", "-dash", "5"}, "no such change"}, // other's
		{[]string{"revert", "r", "other", "1"}, "no such change"},       // -dash's
		{[]string{"revert", "nohistory", "k", "1"}, "keeps no history"},
	} {
		args := append([]string{"-db", db}, tt.args...)
		code, stdout, stderr := runCLI(t, "", args...)
		if code != exitFail || stdout != "" || !strings.Contains(stderr, tt.msg) {
			t.Errorf("run(%q) = %d, %q, %q; want 1 and a message with %q", args, code, stdout, stderr, tt.msg)
		}
	}
	wantUsage(t, db, []usageCase{
		{[]string{"revert", "r", "k", "0"}, `SEQ "0" is not the number of a change`},
		{[]string{"revert", "--", "r", "k", "-1"}, `SEQ "-1" is not`},
		{[]string{"revert", "r", "k", "x"}, `SEQ "x" is not`},
		{[]string{"revert", "r", "k", "1.5"}, `SEQ "1.5" is not`},
		{[]string{"revert", "r", "k", "99999999999999999999"}, "is not the number of a change"},
		{[]string{"revert", "r", "k"}, "want 3 arguments, got 2"},
		{[]string{"revert", "r", "", "1"}, "empty KEY"},
	})
	if got := latest(); got != want {
		t.Errorf("after the failed reverts, the latest change is\n%s\nwant it unchanged\n%s", got, want)
	}

	// A change the history did not see: the revert writes nothing.
	mustRun(t, db, "history-keep", "r", "0")
	mustRun(t, db, "set", "--", "r", "-dash", "unseen")
	mustRun(t, db, "history-keep", "r", "20")
	args := []string{"-db", db, "revert", "--", "r", "-dash", "1"}
	code, stdout, stderr := runCLI(t, "", args...)
	if want := `changed since change 8: the key holds "unseen"`; code != exitFail || stdout != "" || !strings.Contains(stderr, want) {
		t.Errorf("run(%q) = %d, %q, %q; want 1 and a message with %q", args, code, stdout, stderr, want)
	}
	if v, ok := get(); !ok || v != "unseen" {
		t.Errorf("after the conflict, get = %q, %v; want unseen", v, ok)
	}
	if _, err := os.Stat(db); err != nil {
		t.Fatal(err)
	}
}
