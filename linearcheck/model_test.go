package linearcheck

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// kind is the operation a history entry records.
type kind uint8

const (
	opGet kind = iota // Lookup
	opSet
	opSetTTL
	opDelete
)

// input is what a call was asked to do. It is comparable, and so is every
// field porcupine sees.
type input struct {
	Kind  kind
	NS    string
	Key   string
	Value string // opSet, opSetTTL
	// Expires is the absolute expiry an opSetTTL asked for, in Unix
	// nanoseconds: the clock of its phase plus its TTL.
	Expires int64
	// Now is the clock, in Unix nanoseconds, under which an opGet ran.
	Now int64
}

// output is what a Lookup returned; writes return the zero output.
type output struct {
	Value string
	OK    bool
}

// register is the state of one key: absent, or a value with an optional
// expiry (0: never).
type register struct {
	Present bool
	Value   string
	Expires int64
}

// visibleAt returns what a read at clock now returns.
func (r register) visibleAt(now int64) output {
	if !r.Present || (r.Expires != 0 && now >= r.Expires) {
		return output{}
	}
	return output{Value: r.Value, OK: true}
}

// model is a key-value store with expiry, partitioned by key: each
// partition is a register.
var model = porcupine.Model{
	Partition: partitionByKey,
	Init:      func() any { return register{} },
	Step: func(state, in, out any) (bool, any) {
		r, i := state.(register), in.(input)
		switch i.Kind {
		case opGet:
			return out.(output) == r.visibleAt(i.Now), r
		case opSet:
			return true, register{Present: true, Value: i.Value}
		case opSetTTL:
			return true, register{Present: true, Value: i.Value, Expires: i.Expires}
		case opDelete:
			return true, register{}
		}
		panic(fmt.Sprintf("linearcheck: unknown operation kind %d", i.Kind))
	},
	DescribeOperation: func(in, out any) string {
		i := in.(input)
		switch i.Kind {
		case opGet:
			o := out.(output)
			if !o.OK {
				return fmt.Sprintf("get %s/%s @%s -> absent", i.NS, i.Key, clockString(i.Now))
			}
			return fmt.Sprintf("get %s/%s @%s -> %q", i.NS, i.Key, clockString(i.Now), o.Value)
		case opSet:
			return fmt.Sprintf("set %s/%s %q", i.NS, i.Key, i.Value)
		case opSetTTL:
			return fmt.Sprintf("set %s/%s %q until %s", i.NS, i.Key, i.Value, clockString(i.Expires))
		case opDelete:
			return fmt.Sprintf("delete %s/%s", i.NS, i.Key)
		}
		return "?"
	},
	DescribeState: func(state any) string {
		r := state.(register)
		switch {
		case !r.Present:
			return "absent"
		case r.Expires != 0:
			return fmt.Sprintf("%q until %s", r.Value, clockString(r.Expires))
		}
		return fmt.Sprintf("%q", r.Value)
	},
}

// clockString shows a clock reading as the offset from the tests' epoch.
func clockString(unixNano int64) string {
	return "t+" + time.Duration(unixNano-epoch.UnixNano()).String()
}

// epoch is where the injected clocks start: a whole millisecond.
var epoch = time.Date(2026, 3, 7, 10, 0, 0, 0, time.UTC)

type keyID struct{ ns, key string }

// partitionByKey splits a history into one history per key, keeping the
// order of each.
func partitionByKey(history []porcupine.Operation) [][]porcupine.Operation {
	index := map[keyID]int{}
	var parts [][]porcupine.Operation
	for _, op := range history {
		i := op.Input.(input)
		k := keyID{i.NS, i.Key}
		n, ok := index[k]
		if !ok {
			n = len(parts)
			index[k] = n
			parts = append(parts, nil)
		}
		parts[n] = append(parts[n], op)
	}
	return parts
}

// checkTimeout bounds one porcupine check. The histories of these tests are
// decided in milliseconds; Unknown fails the test rather than passing it.
const checkTimeout = 20 * time.Second

// check fails the test unless porcupine finds history linearizable. For an
// Illegal history it writes porcupine's visualization to a file in the
// temporary directory and names it.
func check(t *testing.T, history []porcupine.Operation) {
	t.Helper()
	switch res := porcupine.CheckOperationsTimeout(model, history, checkTimeout); res {
	case porcupine.Ok:
	case porcupine.Unknown:
		t.Fatalf("porcupine: Unknown after %v on %d operations; want Ok", checkTimeout, len(history))
	default:
		explain(t, history)
		t.Fatalf("porcupine: %s on %d operations; want Ok; visualization: %s", res, len(history), visualize(t, history))
	}
}

// explain logs, for each key whose history is not linearizable, the end of
// the longest linearization porcupine found and the first operations it
// could not place after it.
func explain(t *testing.T, history []porcupine.Operation) {
	t.Helper()
	for _, part := range partitionByKey(history) {
		res, info := porcupine.CheckOperationsVerbose(model, part, checkTimeout)
		if res == porcupine.Ok {
			continue
		}
		var longest []porcupine.Operation
		for _, lin := range info.PartialLinearizationsOperations()[0] {
			if len(lin) > len(longest) {
				longest = lin
			}
		}
		placed := map[int64]bool{} // by Call, unique in a history
		for _, op := range longest {
			placed[op.Call] = true
		}
		var b strings.Builder
		in := part[0].Input.(input)
		fmt.Fprintf(&b, "%s/%s: %s; %d of %d operations linearized, ending with:\n", in.NS, in.Key, res, len(longest), len(part))
		for _, op := range longest[max(0, len(longest)-5):] {
			fmt.Fprintf(&b, "\tclient %d [%d, %d] %s\n", op.ClientId, op.Call, op.Return, model.DescribeOperation(op.Input, op.Output))
		}
		b.WriteString("then none of these fits:\n")
		var rest []porcupine.Operation
		for _, op := range part {
			if !placed[op.Call] {
				rest = append(rest, op)
			}
		}
		slices.SortFunc(rest, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
		for _, op := range rest[:min(5, len(rest))] {
			fmt.Fprintf(&b, "\tclient %d [%d, %d] %s", op.ClientId, op.Call, op.Return, model.DescribeOperation(op.Input, op.Output))
			if w, ok := writer(part, op); ok {
				fmt.Fprintf(&b, " (written by client %d [%d, %d])", w.ClientId, w.Call, w.Return)
			}
			b.WriteString("\n")
		}
		n := 0
		for _, r := range part {
			if w, ok := overwrittenBefore(part, r); ok {
				if n == 0 {
					b.WriteString("reads of a value overwritten by a write that returned before they began:\n")
				}
				n++
				fmt.Fprintf(&b, "\tclient %d [%d, %d] %s, after client %d [%d, %d] %s\n",
					r.ClientId, r.Call, r.Return, model.DescribeOperation(r.Input, r.Output),
					w.ClientId, w.Call, w.Return, model.DescribeOperation(w.Input, w.Output))
			}
		}
		if n == 0 {
			b.WriteString("no read returned a value overwritten by a write that returned before it began\n")
		}
		t.Log(b.String())
	}
}

// overwrittenBefore reports whether read op returned a value that another
// write certainly overwrote before op began: a write called after the
// value's write returned, and returned before op was called. It returns
// that write.
func overwrittenBefore(history []porcupine.Operation, op porcupine.Operation) (porcupine.Operation, bool) {
	w, ok := writer(history, op)
	if !ok {
		return porcupine.Operation{}, false
	}
	for _, later := range history {
		if later.Input.(input).Kind != opGet && w.Return < later.Call && later.Return < op.Call {
			return later, true
		}
	}
	return porcupine.Operation{}, false
}

// visualize writes porcupine's view of history to a new HTML file and
// returns its path.
func visualize(t *testing.T, history []porcupine.Operation) string {
	t.Helper()
	_, info := porcupine.CheckOperationsVerbose(model, history, checkTimeout)
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	f, err := os.CreateTemp("", "linearcheck-"+name+"-*.html")
	if err != nil {
		t.Logf("visualization: %v", err)
		return "(none)"
	}
	path := f.Name()
	f.Close()
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		t.Logf("visualization: %v", err)
	}
	return path
}

// writer returns the write in history whose value the read op returned.
func writer(history []porcupine.Operation, op porcupine.Operation) (porcupine.Operation, bool) {
	in, out := op.Input.(input), op.Output.(output)
	if in.Kind != opGet || !out.OK {
		return porcupine.Operation{}, false
	}
	for _, w := range history {
		if wi := w.Input.(input); (wi.Kind == opSet || wi.Kind == opSetTTL) && wi.Value == out.Value {
			return w, true
		}
	}
	return porcupine.Operation{}, false
}

// TestModelRejects checks that the model, with porcupine, tells
// linearizable histories from others: each case is a small hand-made
// history and the verdict it must get.
func TestModelRejects(t *testing.T) {
	const ms = int64(time.Millisecond)
	t0 := epoch.UnixNano()
	set := func(key, v string) input { return input{Kind: opSet, NS: "a", Key: key, Value: v} }
	setTTL := func(key, v string, exp int64) input {
		return input{Kind: opSetTTL, NS: "a", Key: key, Value: v, Expires: exp}
	}
	del := func(key string) input { return input{Kind: opDelete, NS: "a", Key: key} }
	get := func(key string, now int64) input { return input{Kind: opGet, NS: "a", Key: key, Now: now} }
	val := func(v string) output { return output{Value: v, OK: true} }
	absent := output{}
	op := func(client int, call, ret int64, in input, out output) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
	}

	tests := []struct {
		name    string
		history []porcupine.Operation
		want    porcupine.CheckResult
	}{
		{"read of an overwritten value", []porcupine.Operation{
			op(0, 0, 1, set("k", "v1"), output{}),
			op(0, 2, 3, set("k", "v2"), output{}),
			op(1, 4, 5, get("k", t0), val("v1")),
		}, porcupine.Illegal},
		{"read racing the overwrite", []porcupine.Operation{
			op(0, 0, 1, set("k", "v1"), output{}),
			op(0, 2, 6, set("k", "v2"), output{}),
			op(1, 3, 4, get("k", t0), val("v1")),
			op(2, 3, 5, get("k", t0), val("v2")),
		}, porcupine.Ok},
		{"old value after a read saw the new one", []porcupine.Operation{
			op(0, 0, 1, set("k", "v1"), output{}),
			op(0, 2, 9, set("k", "v2"), output{}),
			op(1, 3, 4, get("k", t0), val("v2")),
			op(2, 5, 6, get("k", t0), val("v1")),
		}, porcupine.Illegal},
		{"read of a deleted key", []porcupine.Operation{
			op(0, 0, 1, set("k", "v1"), output{}),
			op(0, 2, 3, del("k"), output{}),
			op(1, 4, 5, get("k", t0), val("v1")),
		}, porcupine.Illegal},
		{"empty value read as absent", []porcupine.Operation{
			op(0, 0, 1, set("k", ""), output{}),
			op(1, 2, 3, get("k", t0), absent),
		}, porcupine.Illegal},
		{"absent key read as empty value", []porcupine.Operation{
			op(1, 0, 1, get("k", t0), val("")),
		}, porcupine.Illegal},
		{"expired value served", []porcupine.Operation{
			op(0, 0, 1, setTTL("k", "v1", t0+10*ms), output{}),
			op(1, 2, 3, get("k", t0+10*ms), val("v1")),
		}, porcupine.Illegal},
		{"live value read as absent", []porcupine.Operation{
			op(0, 0, 1, setTTL("k", "v1", t0+10*ms), output{}),
			op(1, 2, 3, get("k", t0+9*ms), absent),
		}, porcupine.Illegal},
		{"expiry at the millisecond", []porcupine.Operation{
			op(0, 0, 1, setTTL("k", "v1", t0+10*ms), output{}),
			op(1, 2, 3, get("k", t0+9*ms), val("v1")),
			op(1, 4, 5, get("k", t0+10*ms), absent),
		}, porcupine.Ok},
		{"set clears the expiry", []porcupine.Operation{
			op(0, 0, 1, setTTL("k", "v1", t0+10*ms), output{}),
			op(0, 2, 3, set("k", "v2"), output{}),
			op(1, 4, 5, get("k", t0+time.Hour.Nanoseconds()), absent),
		}, porcupine.Illegal},
		{"keys are independent", []porcupine.Operation{
			op(0, 0, 1, set("k", "v1"), output{}),
			op(0, 2, 3, set("j", "w1"), output{}),
			op(1, 4, 5, get("k", t0), val("v1")),
			op(1, 6, 7, get("j", t0), val("w1")),
		}, porcupine.Ok},
		{"one stale key among good ones", []porcupine.Operation{
			op(0, 0, 1, set("k", "v1"), output{}),
			op(0, 2, 3, set("j", "w1"), output{}),
			op(0, 4, 5, set("j", "w2"), output{}),
			op(1, 6, 7, get("k", t0), val("v1")),
			op(1, 8, 9, get("j", t0), val("w1")),
		}, porcupine.Illegal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := porcupine.CheckOperationsTimeout(model, tt.history, checkTimeout)
			if got != tt.want {
				t.Errorf("CheckOperationsTimeout = %s; want %s", got, tt.want)
			}
		})
	}
}
