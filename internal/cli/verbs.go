package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/d8da9184/opstate"
)

// verb is one subcommand.
type verb struct {
	name   string
	flags  string   // synopsis of the verb's flags
	params []string // positional parameters
	// optional is how many of params, the last ones, may be left out
	// together.
	optional int
	help     string
	// creates is whether the verb creates the database when it is
	// missing; every other verb fails on a missing database.
	creates bool
	// sweeps is whether the verb's Store runs the background sweeper.
	sweeps bool
	// define adds the verb's flags to fs, storing them in inv.
	define func(fs *flag.FlagSet, inv *invocation)
	// check, when not nil, checks the parsed flags and arguments: its
	// error is bad usage.
	check func(fs *flag.FlagSet, inv *invocation) error
	// prepare, when not nil, runs before the database is opened, for what
	// can fail without it (reading a file, listening); its error means
	// exitFail, and release is called once the verb is done.
	prepare func(inv *invocation) (release func(), err error)
	// exec runs the verb on s and returns the exit status; a non-nil error
	// means exitFail.
	exec func(s *opstate.Store, inv *invocation, stdout io.Writer) (int, error)
	// run, for a verb that opens no database, runs it instead of exec.
	run func(inv *invocation, stdout, stderr io.Writer) (int, error)
}

func (v *verb) synopsis() string {
	k := len(v.params) - v.optional
	params := strings.Join(v.params[:k], " ")
	if v.optional > 0 {
		params = strings.TrimSpace(params + " [" + strings.Join(v.params[k:], " ") + "]")
	}
	return strings.Join(slices.DeleteFunc([]string{v.name, v.flags, params},
		func(s string) bool { return s == "" }), " ")
}

// verbs lists the verbs in the order usage shows them.
var verbs = []*verb{
	{
		name:   "get",
		params: []string{"NS", "KEY"},
		help:   "print the value of KEY and a newline; exit 1, printing nothing, if it is missing or expired",
		exec:   execGet,
	},
	{
		name:   "set",
		flags:  "[-ttl DURATION]",
		params: []string{"NS", "KEY", "VALUE"},
		help: "store VALUE under KEY, expiring after DURATION (e.g. 90s, 36h) if -ttl is given;\n" +
			"VALUE - reads the value from standard input, byte for byte (1000000000 bytes at most)",
		define: func(fs *flag.FlagSet, inv *invocation) {
			fs.DurationVar(&inv.ttl, "ttl", 0, "expire the key after `DURATION` (positive)")
		},
		creates: true,
		exec:    execSet,
	},
	{
		name:   "del",
		params: []string{"NS", "KEY"},
		help:   "delete KEY",
		exec:   execDel,
	},
	{
		name:   "drop",
		params: []string{"NS"},
		help:   "delete every key of NS",
		exec:   execDrop,
	},
	{
		name:   "list",
		flags:  "[-json]",
		params: []string{"NS"},
		help: "print the live keys of NS as KEY<TAB>VALUE lines sorted by key, or with -json\n" +
			"as one JSON object ({} if none); -json fails if a key or value is not valid UTF-8",
		define: func(fs *flag.FlagSet, inv *invocation) {
			fs.BoolVar(&inv.json, "json", false, "print one JSON object")
		},
		exec: execList,
	},
	{
		name:   "watch",
		flags:  "[-json]",
		params: []string{"NS"},
		help: "print one line per change to NS until interrupted (exit 0 on SIGINT or SIGTERM):\n" +
			"set<TAB>KEY<TAB>VALUE, delete<TAB>KEY, expire<TAB>KEY, reset (anything may have\n" +
			"changed: re-read NS with list), or stale (PostgreSQL: the change stream is down\n" +
			"until the next reset); or with -json one JSON object a line;\n" +
			"-json fails if a key or value is not valid UTF-8",
		define: func(fs *flag.FlagSet, inv *invocation) {
			fs.BoolVar(&inv.json, "json", false, "print one JSON object per change")
		},
		exec: execWatch,
	},
	{
		name: "ns",
		help: "print NAMESPACE<TAB>COUNT lines, sorted, for the namespaces holding live keys",
		exec: execNamespaces,
	},
	{
		name: "sweep",
		help: "delete the expired keys and print how many",
		exec: execSweep,
	},
	{
		name:   "backup",
		params: []string{"DEST"},
		help: "write a consistent copy of the database to the new file DEST (mode 0600), while\n" +
			"others go on writing; fails if DEST exists. Copy an open database this way, not with cp.\n" +
			"SQLite only: copy a PostgreSQL database with pg_dump",
		exec: execBackup,
	},
	historyKeepVerb,
	historyVerb,
	revertVerb,
	serveVerb,
	tokenVerb,
	{
		name: "help",
		help: "print this help",
	},
}

func lookupVerb(name string) *verb {
	for _, v := range verbs {
		if v.name == name {
			return v
		}
	}
	return nil
}

// usage returns the help text printed by -h and help.
func usage() string {
	var b strings.Builder
	b.WriteString("usage: opstate [-db PATH|URL] [-actor NAME] VERB [ARGS]\n\nVerbs:\n")
	for _, v := range verbs {
		fmt.Fprintf(&b, "  %s\n", v.synopsis())
		for line := range strings.SplitSeq(v.help, "\n") {
			fmt.Fprintf(&b, "      %s\n", line)
		}
	}
	b.WriteString(`
Flags:
  -actor NAME
      who this run's writes are recorded as in the history of a namespace
      that keeps one (default: the OS user's name); at most 256 bytes,
      without control characters
  -db PATH|URL
      the database (default $` + DBEnv + `, or ` + defaultDB + ` if that is empty): the
      SQLite file PATH, which set creates (mode 0600) if missing, while every
      other verb fails on a missing file and creates nothing; or the
      PostgreSQL database of URL, postgres://USER:PASSWORD@HOST:PORT/DBNAME
      (or postgresql://...; libpq's PG* variables and ~/.pgpass supply what
      it leaves out), where every verb creates opstate's table if missing.
      Only the opstate command of module github.com/d8da9184/opstate/pgstate
      speaks PostgreSQL (in a checkout: cd pgstate && go install ./cmd/opstate);
      the root module's refuses a URL
  -h, -help
      print this help

Environment:
  ` + DBEnv + `
      the database, PATH or URL, when -db is not given. Keep a password here,
      in PGPASSWORD or in ~/.pgpass rather than in -db, where other users of
      the machine see it (ps)

Verb flags go between the verb and its arguments; put "--" before a
namespace or key that begins with "-".

In the text output of list, ns and watch, a key, value or namespace that
is not valid UTF-8, holds a tab, newline or other non-printable character,
or begins with a double quote is printed quoted by strconv.Quote (undo with
strconv.Unquote); anything else is printed as is. get prints the value raw.
list -json prints every string exactly or nothing at all: if a key or
value is not valid UTF-8, which JSON cannot hold, it fails (exit 1) naming
the first such key; use the text output or get for those. watch -json
likewise fails (exit 1) at the first change whose key or value is not
valid UTF-8, having printed the changes before it.

Exit status: 0 on success, for help, and for watch and serve ended by
SIGINT or SIGTERM; 1 if get finds no live key (and prints nothing) or the
command fails (message on standard error), as when a verb other than set
and serve finds no database at PATH or PostgreSQL cannot be reached or
refuses the login; 2
for bad usage, in which case the database is neither
opened nor created.
`)
	return b.String()
}

func execGet(s *opstate.Store, inv *invocation, stdout io.Writer) (int, error) {
	v, ok, err := s.Lookup(inv.args[0], inv.args[1])
	if err != nil {
		return exitFail, err
	}
	if !ok {
		return exitFail, nil
	}
	if _, err := io.WriteString(stdout, v+"\n"); err != nil {
		return exitFail, fmt.Errorf("opstate: write output: %w", err)
	}
	return exitOK, nil
}

func execSet(s *opstate.Store, inv *invocation, _ io.Writer) (int, error) {
	ns, key, value := inv.args[0], inv.args[1], inv.args[2]
	var err error
	if inv.ttl > 0 {
		err = s.SetWithTTL(ns, key, value, inv.ttl)
	} else {
		err = s.Set(ns, key, value)
	}
	return exitOK, err
}

func execDel(s *opstate.Store, inv *invocation, _ io.Writer) (int, error) {
	return exitOK, s.Delete(inv.args[0], inv.args[1])
}

func execDrop(s *opstate.Store, inv *invocation, _ io.Writer) (int, error) {
	return exitOK, s.DeleteNamespace(inv.args[0])
}

func execList(s *opstate.Store, inv *invocation, stdout io.Writer) (int, error) {
	m, err := s.List(inv.args[0])
	if err != nil {
		return exitFail, err
	}
	keys := slices.Sorted(maps.Keys(m))
	if inv.json {
		// encoding/json would replace invalid UTF-8 with U+FFFD, altering
		// values and merging keys that differ only in invalid bytes: JSON
		// output is exact or absent.
		if err := checkJSON("list", keys, m); err != nil {
			return exitFail, fmt.Errorf("opstate: list -json %q: %w", inv.args[0], err)
		}
	}
	w := bufio.NewWriter(stdout)
	if inv.json {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(m); err != nil { // m is never nil: {} when empty
			return exitFail, fmt.Errorf("opstate: encode %q: %w", inv.args[0], err)
		}
	} else {
		for _, k := range keys {
			fmt.Fprintf(w, "%s\t%s\n", field(k), field(m[k]))
		}
	}
	return flush(w)
}

// checkJSON returns an error naming the first of keys, in order, that is
// not valid UTF-8 or whose value in m is not, since JSON cannot hold such
// a string exactly. verb names the command whose text output prints it.
func checkJSON(verb string, keys []string, m map[string]string) error {
	for _, k := range keys {
		if what := notUTF8(k, m[k]); what != "" {
			return fmt.Errorf("%s is not valid UTF-8, which JSON cannot hold exactly; "+
				"%s without -json prints it exactly, quoted", what, verb)
		}
	}
	return nil
}

// notUTF8 returns "key KEY" if key is not valid UTF-8, else "the value of
// key KEY" if value is not, else "".
func notUTF8(key, value string) string {
	switch {
	case !utf8.ValidString(key):
		return "key " + strconv.Quote(key)
	case !utf8.ValidString(value):
		return "the value of key " + strconv.Quote(key)
	}
	return ""
}

func execNamespaces(s *opstate.Store, _ *invocation, stdout io.Writer) (int, error) {
	nss, err := s.Namespaces() // sorted by name
	if err != nil {
		return exitFail, err
	}
	w := bufio.NewWriter(stdout)
	for _, ns := range nss {
		fmt.Fprintf(w, "%s\t%d\n", field(ns.Name), ns.Keys)
	}
	return flush(w)
}

func execSweep(s *opstate.Store, _ *invocation, stdout io.Writer) (int, error) {
	n, err := s.DeleteExpired(context.Background())
	if err != nil {
		return exitFail, err
	}
	if _, err := fmt.Fprintln(stdout, n); err != nil {
		return exitFail, fmt.Errorf("opstate: write output: %w", err)
	}
	return exitOK, nil
}

func execBackup(s *opstate.Store, inv *invocation, _ io.Writer) (int, error) {
	err := s.Backup(context.Background(), inv.args[0])
	if errors.Is(err, opstate.ErrUnsupported) {
		return exitFail, fmt.Errorf("%w; backup copies SQLite databases only: copy a PostgreSQL one with pg_dump", err)
	}
	return exitOK, err
}

func flush(w *bufio.Writer) (int, error) {
	if err := w.Flush(); err != nil {
		return exitFail, fmt.Errorf("opstate: write output: %w", err)
	}
	return exitOK, nil
}

// field returns s as the text output of list, ns and watch prints it: as
// it is when it is valid UTF-8 of printable characters not beginning with
// a double quote, else quoted by strconv.Quote. Every output line thus
// holds no tab but those between its fields, and reads back exactly.
func field(s string) string {
	if strings.HasPrefix(s, `"`) || !utf8.ValidString(s) ||
		strings.ContainsFunc(s, func(r rune) bool { return !strconv.IsPrint(r) }) {
		return strconv.Quote(s)
	}
	return s
}
