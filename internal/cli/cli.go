// Package cli is the opstate command: its verbs, flags, output formats
// and exit statuses, for the main packages that build it. Each main
// package gives [Main] the [Opener] of the databases it speaks: the root
// module's cmd/opstate speaks SQLite ([OpenSQLite]), module pgstate's
// PostgreSQL too. The command's documentation, its users' manual, is that
// of cmd/opstate (doc.go there).
package cli

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/d8da9184/opstate"
)

// defaultDB is the database path used when neither -db nor [DBEnv] is
// given.
const defaultDB = "./opstate.db"

// DBEnv is the environment variable whose value, when not empty, is the
// database when -db is not given: a path or a URL, as -db takes them.
const DBEnv = "OPSTATE_DB"

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1 // also: get found no live key
	exitUsage = 2
)

// An Opener opens the Store that db, the value of -db (or of [DBEnv]),
// names, for one run of the command, as o asks. db is never empty, and is
// a file path or, as [IsPostgresURL] tells, a PostgreSQL URL. The error
// is printed as it is, on a line of its own: it must not hold the URL's
// password.
type Opener func(db string, o OpenOptions) (*opstate.Store, error)

// OpenOptions is what one run of the command asks of the Store an
// [Opener] opens.
type OpenOptions struct {
	// Create reports whether the verb may create the database (set and
	// serve do; every other verb fails on a database that does not
	// exist).
	Create bool
	// Sweep reports whether the Store runs its background sweeper (serve
	// does, running for long: expired keys are then deleted, and reported
	// to watchers, as they expire; every other verb opens the Store
	// without one).
	Sweep bool
	// Actor is who the Store's writes are recorded as in the history of a
	// namespace that keeps one: -actor, or the OS user's name.
	Actor string
}

// Options returns the [opstate.Options] of a Store opened as o asks.
func (o OpenOptions) Options() opstate.Options {
	return opstate.Options{SweepInterval: SweepInterval(o.Sweep), Actor: o.Actor}
}

// Main runs the command line args (without the program name) with the
// given standard streams, opening its database with open, and returns the
// exit status. It reads [DBEnv] from the environment. Everything about args is checked before the database is
// opened, so that bad usage changes nothing.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer, open Opener) int {
	inv, err := parse(args, os.Getenv(DBEnv))
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage())
		return exitOK
	}
	if err != nil { // bad usage
		fmt.Fprintf(stderr, "opstate: %v\n", err)
		if ue := (*usageError)(nil); errors.As(err, &ue) && ue.verb != nil {
			fmt.Fprintf(stderr, "usage: opstate [-db PATH|URL] [-actor NAME] %s\n", ue.verb.synopsis())
		}
		fmt.Fprintln(stderr, "Run 'opstate -h' for help.")
		return exitUsage
	}

	if inv.verb.run != nil { // a verb that opens no database
		code, err := inv.verb.run(inv, stdout, stderr)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitFail
		}
		return code
	}
	if inv.verb.prepare != nil {
		release, err := inv.verb.prepare(inv)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitFail
		}
		defer release()
	}
	inv.stderr = stderr

	if inv.fromStdin {
		v, err := readValue(stdin, maxValue)
		if err != nil {
			fmt.Fprintf(stderr, "opstate: read value from standard input: %v\n", err)
			return exitFail
		}
		inv.args[2] = v
	}

	s, err := open(inv.db, OpenOptions{Create: inv.verb.creates, Sweep: inv.verb.sweeps, Actor: inv.actor})
	if err != nil {
		fmt.Fprintln(stderr, err) // the library's errors say "opstate: open PATH: ..." or "opstate: open postgres: ..."
		return exitFail
	}
	code, err := inv.verb.exec(s, inv, stdout)
	if cerr := s.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFail
	}
	return code
}

// invocation is a parsed and validated command line.
type invocation struct {
	db        string
	actor     string // -actor, or the OS user's name
	verb      *verb
	args      []string      // the verb's params (those it may leave out left out), none empty but VALUE
	ttl       time.Duration // set: 0 means no expiry
	json      bool          // list, watch, history
	fromStdin bool          // set: args[2] is to be read from standard input
	serve     serveConfig   // serve
	n         int           // history -n; history-keep N
	seq       int64         // revert SEQ
	stderr    io.Writer     // for the messages of a verb that runs on
}

// usageError is bad usage, reported with exit status 2.
type usageError struct {
	verb *verb // nil when the error is not about one verb
	msg  string
}

func (e *usageError) Error() string { return e.msg }

func usagef(v *verb, format string, args ...any) error {
	return &usageError{verb: v, msg: fmt.Sprintf(format, args...)}
}

// newFlagSet returns a flag set that reports errors only through Parse's
// result: Main prints them.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses and validates args; env is the value of [DBEnv], the
// database when -db is not given. Its error is flag.ErrHelp for a request
// for help, or else a *usageError.
func parse(args []string, env string) (*invocation, error) {
	inv := &invocation{}
	fs := newFlagSet("opstate")
	fs.StringVar(&inv.db, "db", "", "")
	fs.StringVar(&inv.actor, "actor", "", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usagef(nil, "%v", err)
	}
	if !isSet(fs, "actor") {
		inv.actor = osUser()
	} else if err := checkActor(inv.actor); err != nil {
		return nil, usagef(nil, "-actor %q: %v", inv.actor, err)
	}
	from, sep := "-db", " " // where inv.db comes from, for messages: -db X or OPSTATE_DB=X
	if !isSet(fs, "db") {
		inv.db = cmp.Or(env, defaultDB)
		if env != "" {
			from, sep = DBEnv, "="
		}
	}
	switch {
	case inv.db == "":
		return nil, usagef(nil, "empty -db path")
	case IsPostgresURL(inv.db):
		// The Opener checks it, and refuses it if it speaks SQLite only.
	case isKeyValueDSN(inv.db):
		// Not echoed: it may hold a password.
		return nil, usagef(nil, "%s holds a key=value connection string, which opstate does not take; "+
			"give a postgres:// URL (libpq's PG* variables supply what it leaves out)", from)
	case inv.db == ":memory:":
		// The library would open a private in-memory database, gone when
		// the command exits: a set would be lost and a get find nothing.
		return nil, usagef(nil, "%s%s:memory: is an in-memory database, which would be gone when this command exits; give a file path (./:memory: for a file of that name)", from, sep)
	case strings.HasPrefix(inv.db, "file:"):
		return nil, usagef(nil, `%s%s%s: a path beginning with "file:" is an SQLite URI, which opstate does not take; give a file path`, from, sep, inv.db)
	}
	if fs.NArg() == 0 {
		return nil, usagef(nil, "missing verb")
	}
	name := fs.Arg(0)
	v := lookupVerb(name)
	if v == nil {
		return nil, usagef(nil, "unknown verb %q", name)
	}
	inv.verb = v

	vfs := newFlagSet(name)
	if v.define != nil {
		v.define(vfs, inv)
	}
	if err := vfs.Parse(fs.Args()[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usagef(v, "%s: %v", name, err)
	}
	if name == "help" && vfs.NArg() == 0 {
		return nil, flag.ErrHelp
	}
	inv.args = slices.Clone(vfs.Args()) // set - replaces args[2]; the caller's slice stays as it was
	if most, least := len(v.params), len(v.params)-v.optional; len(inv.args) < least || len(inv.args) > most {
		if least == most {
			return nil, usagef(v, "%s: want %d arguments, got %d", name, most, len(inv.args))
		}
		return nil, usagef(v, "%s: want %d to %d arguments, got %d", name, least, most, len(inv.args))
	}
	for i, a := range inv.args {
		if v.params[i] != "VALUE" && a == "" {
			return nil, usagef(v, "%s: empty %s", name, v.params[i])
		}
	}
	if isSet(vfs, "ttl") && inv.ttl <= 0 {
		return nil, usagef(v, "%s: -ttl %v is not a positive duration", name, inv.ttl)
	}
	if name == "watch" && inv.json && !utf8.ValidString(inv.args[0]) {
		return nil, usagef(v, "watch -json: namespace %q is not valid UTF-8, which JSON cannot hold exactly; "+
			"watch without -json", inv.args[0])
	}
	inv.fromStdin = name == "set" && inv.args[2] == "-"
	if v.check != nil {
		if err := v.check(vfs, inv); err != nil {
			return nil, usagef(v, "%s: %v", name, err)
		}
	}
	return inv, nil
}

// isSet reports whether the flag name was given to fs.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
