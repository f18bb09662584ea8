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
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/d8da9184/opstate"
)

// defaultHistory is how many changes history prints without -n.
const defaultHistory = 20

var historyKeepVerb = &verb{
	name:     "history-keep",
	params:   []string{"NS", "N"},
	optional: 2,
	help: "make NS keep the history of its keys, its last N changes: every change by any writer\n" +
		"(plain SQL included) is recorded in the database with the time, who made it, and the\n" +
		"value before and after; N 0 turns it off. Without arguments, print NAMESPACE<TAB>N\n" +
		"lines, sorted, for the namespaces that keep history",
	check: func(_ *flag.FlagSet, inv *invocation) error {
		switch len(inv.args) {
		case 1:
			return errors.New("want NS and N, or no arguments")
		case 2:
			n, err := strconv.Atoi(inv.args[1])
			if err != nil || n < 0 {
				return fmt.Errorf("a keep of %q is not a number of changes (N is 0 or more; 0 turns history off)", inv.args[1])
			}
			inv.n = n
		}
		return nil
	},
	exec: execHistoryKeep,
}

var historyVerb = &verb{
	name:     "history",
	flags:    "[-n N] [-json]",
	params:   []string{"NS", "KEY"},
	optional: 1,
	help: "print the recorded changes of KEY, or of every key of NS, newest first, at most N\n" +
		"(default 20): a table of SEQ, TIME (UTC, the database's clock), ACTOR (sql for plain\n" +
		"SQL), OP (set, delete, expire), KEY, CHANGE (BEFORE → AFTER, each a quoted value or\n" +
		"absent) and EXPIRES (of the value set: a time, or never); or with -json one JSON array;\n" +
		"-json fails if a string is not valid UTF-8",
	define: func(fs *flag.FlagSet, inv *invocation) {
		fs.IntVar(&inv.n, "n", defaultHistory, "print at most `N` changes")
		fs.BoolVar(&inv.json, "json", false, "print one JSON array")
	},
	check: func(_ *flag.FlagSet, inv *invocation) error {
		if inv.n <= 0 {
			return fmt.Errorf("-n %d is not a positive number of changes", inv.n)
		}
		return nil
	},
	exec: execHistory,
}

var revertVerb = &verb{
	name:   "revert",
	params: []string{"NS", "KEY", "SEQ"},
	help: "give KEY the value and expiry it had right after change SEQ of its history (no value\n" +
		"if that change deleted it), recorded as a change of this run's actor; only if KEY\n" +
		"still holds what its latest recorded change left: if it was changed since, change\n" +
		"nothing and fail, saying what it holds",
	check: func(_ *flag.FlagSet, inv *invocation) error {
		seq, err := strconv.ParseInt(inv.args[2], 10, 64)
		if err != nil || seq <= 0 {
			return fmt.Errorf("SEQ %q is not the number of a change (see opstate history)", inv.args[2])
		}
		inv.seq = seq
		return nil
	},
	exec: func(s *opstate.Store, inv *invocation, _ io.Writer) (int, error) {
		return exitOK, s.Revert(context.Background(), inv.args[0], inv.args[1], inv.seq)
	},
}

func execHistoryKeep(s *opstate.Store, inv *invocation, stdout io.Writer) (int, error) {
	if len(inv.args) == 2 {
		return exitOK, s.SetHistory(inv.args[0], inv.n)
	}
	keeps, err := s.HistoryKeeps()
	if err != nil {
		return exitFail, err
	}
	w := bufio.NewWriter(stdout)
	for _, ns := range slices.Sorted(maps.Keys(keeps)) {
		fmt.Fprintf(w, "%s\t%d\n", field(ns), keeps[ns])
	}
	return flush(w)
}

func execHistory(s *opstate.Store, inv *invocation, stdout io.Writer) (int, error) {
	ns, key := inv.args[0], ""
	if len(inv.args) == 2 {
		key = inv.args[1]
	}
	cs, err := s.History(context.Background(), ns, key, inv.n)
	if err != nil {
		return exitFail, err
	}
	w := bufio.NewWriter(stdout)
	if inv.json {
		// Exact or absent, as list -json.
		for _, c := range cs {
			if what := changeNotUTF8(c); what != "" {
				return exitFail, fmt.Errorf("opstate: history -json %q: change %d: %s is not valid UTF-8, "+
					"which JSON cannot hold exactly; history without -json prints it exactly, quoted", ns, c.Seq, what)
			}
		}
		out := make([]changeJSON, len(cs))
		for i, c := range cs {
			out[i] = jsonChange(c)
		}
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(out); err != nil {
			return exitFail, fmt.Errorf("opstate: encode the history of %q: %w", ns, err)
		}
		return flush(w)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tOP\tKEY\tCHANGE\tEXPIRES")
	for _, c := range cs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s → %s\t%s\n", c.Seq, stamp(c.Time), field(actorName(c.Actor)),
			c.Op, field(c.Key), beforeText(c), afterText(c), expiresText(c))
	}
	if err := tw.Flush(); err != nil {
		return exitFail, fmt.Errorf("opstate: write output: %w", err)
	}
	return flush(w)
}

// actorName is how history shows the actor of a change: "sql" for a
// change made by plain SQL, which has none.
func actorName(actor string) string {
	if actor == "" {
		return "sql"
	}
	return actor
}

// stamp formats a change's time, or an expiry, in UTC to the millisecond.
func stamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// beforeText and afterText are the two sides of history's CHANGE column:
// a value quoted by strconv.Quote, or absent, unquoted, for no row.
func beforeText(c opstate.Change) string {
	if !c.Existed {
		return "absent"
	}
	return strconv.Quote(c.Before)
}

func afterText(c opstate.Change) string {
	if c.Op != opstate.OpSet {
		return "absent"
	}
	return strconv.Quote(c.After)
}

// expiresText is history's EXPIRES column: the expiry of the value a set
// left, never, or - for a change that left no value.
func expiresText(c opstate.Change) string {
	switch {
	case c.Op != opstate.OpSet:
		return "-"
	case c.Expires.IsZero():
		return "never"
	}
	return stamp(c.Expires)
}

// changeJSON is one change as history -json prints it. Before and its
// expiry are there when the key had a row before the change, After and
// Expires when the change set a value; expiries that are never are left
// out.
type changeJSON struct {
	Seq           int64   `json:"seq"`
	Time          string  `json:"time"`
	Namespace     string  `json:"namespace"`
	Key           string  `json:"key"`
	Op            string  `json:"op"`
	Actor         string  `json:"actor"`
	Before        *string `json:"before,omitempty"`
	BeforeExpires string  `json:"beforeExpires,omitempty"`
	After         *string `json:"after,omitempty"`
	Expires       string  `json:"expires,omitempty"`
}

func jsonChange(c opstate.Change) changeJSON {
	j := changeJSON{Seq: c.Seq, Time: stamp(c.Time), Namespace: c.Namespace, Key: c.Key,
		Op: c.Op.String(), Actor: actorName(c.Actor)}
	if c.Existed {
		j.Before = &c.Before
		if !c.BeforeExpires.IsZero() {
			j.BeforeExpires = stamp(c.BeforeExpires)
		}
	}
	if c.Op == opstate.OpSet {
		j.After = &c.After
		if !c.Expires.IsZero() {
			j.Expires = stamp(c.Expires)
		}
	}
	return j
}

// changeNotUTF8 names the first string of c that is not valid UTF-8, or
// returns "".
func changeNotUTF8(c opstate.Change) string {
	for _, f := range []struct{ name, s string }{
		{"the namespace", c.Namespace}, {"the key", c.Key}, {"the actor", c.Actor},
		{"the value before", c.Before}, {"the value after", c.After},
	} {
		if !utf8.ValidString(f.s) {
			return f.name
		}
	}
	return ""
}
