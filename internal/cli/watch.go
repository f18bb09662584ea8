package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/d8da9184/opstate"
)

// execWatch prints the changes to a namespace until SIGINT or SIGTERM,
// which end it with exit status 0.
func execWatch(s *opstate.Store, inv *invocation, stdout io.Writer) (int, error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Without a handler, a write to a closed pipe on standard output kills
	// the process with SIGPIPE before the Store is closed; with one, the
	// write returns EPIPE and the command ends like any failed write.
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	defer signal.Stop(pipe)
	return watch(ctx, s, inv, stdout)
}

// watch prints each change to the namespace inv.args[0] as one line,
// written to stdout in one Write as soon as it is known, until ctx ends
// (exit 0). It fails if the Store closes the channel first, if a write
// fails, or, with -json, at a key or value that is not valid UTF-8.
func watch(ctx context.Context, s *opstate.Store, inv *invocation, stdout io.Writer) (int, error) {
	ns := inv.args[0]
	ctx, cancel := context.WithCancel(ctx) // ends the Watch if a write fails
	defer cancel()
	ch, err := s.Watch(ctx, ns)
	if err != nil {
		if ctx.Err() != nil { // a signal came first
			return exitOK, nil
		}
		return exitFail, fmt.Errorf("opstate: watch %q: %w", ns, err)
	}
	var line bytes.Buffer
	for ev := range ch {
		line.Reset()
		if inv.json {
			if err := watchJSON(&line, ev); err != nil {
				return exitFail, fmt.Errorf("opstate: watch -json %q: %w", ns, err)
			}
		} else {
			watchText(&line, ev)
		}
		if _, err := stdout.Write(line.Bytes()); err != nil {
			return exitFail, fmt.Errorf("opstate: write output: %w", err)
		}
	}
	if ctx.Err() != nil {
		return exitOK, nil
	}
	return exitFail, fmt.Errorf("opstate: watch %q: the store closed the change feed", ns)
}

// watchText appends ev as a text line: set<TAB>KEY<TAB>VALUE,
// delete<TAB>KEY, expire<TAB>KEY, reset or stale, KEY and VALUE written as
// [field] writes them, so that each line holds one event.
func watchText(b *bytes.Buffer, ev opstate.Event) {
	b.WriteString(ev.Op.String())
	if ev.Op != opstate.OpReset && ev.Op != opstate.OpStale {
		b.WriteString("\t" + field(ev.Key))
	}
	if ev.Op == opstate.OpSet {
		b.WriteString("\t" + field(ev.Value))
	}
	b.WriteByte('\n')
}

// watchEvent is the JSON form of an [opstate.Event].
type watchEvent struct {
	Namespace string  `json:"namespace"`
	Key       string  `json:"key,omitempty"`   // absent for reset and stale; never empty otherwise
	Op        string  `json:"op"`              // set, delete, expire, reset or stale
	Value     *string `json:"value,omitempty"` // only for set, "" included
}

// watchJSON appends ev as one line holding a JSON object, or returns an
// error, appending nothing, if its key or value is not valid UTF-8: as with
// list -json, the output is exact or absent.
func watchJSON(b *bytes.Buffer, ev opstate.Event) error {
	if what := notUTF8(ev.Key, ev.Value); what != "" {
		return fmt.Errorf("%s is not valid UTF-8, which JSON cannot hold exactly; "+
			"watch without -json prints it exactly, quoted", what)
	}
	we := watchEvent{Namespace: ev.Namespace, Key: ev.Key, Op: ev.Op.String()}
	if ev.Op == opstate.OpSet {
		we.Value = &ev.Value
	}
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	return enc.Encode(we) // with a newline; nothing appended on error
}
