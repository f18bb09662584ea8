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
	opSetIfAbsent
	opSetIfAbsentTTL
	opCAS // CompareAndSwap
	opCASTTL
	opCAD // CompareAndDelete
)

// String returns the API name of k.
func (k kind) String() string {
	names := [...]string{"Lookup", "Set", "SetWithTTL", "Delete", "SetIfAbsent", "SetIfAbsentWithTTL",
		"CompareAndSwap", "CompareAndSwapWithTTL", "CompareAndDelete"}
	if int(k) < len(names) {
		return names[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// conditional reports whether k is a conditional write, whose output says
// whether it changed the key.
func (k kind) conditional() bool { return k >= opSetIfAbsent }

// hasTTL reports whether k asks for an expiry, recorded in Expires.
func (k kind) hasTTL() bool { return k == opSetTTL || k == opSetIfAbsentTTL || k == opCASTTL }

// input is what a call was asked to do. It is comparable, and so is every
// field porcupine sees.
type input struct {
	Kind  kind
	NS    string
	Key   string
	Value string // what a write other than opDelete and opCAD stores
	Old   string // opCAS, opCASTTL, opCAD: the value the key must hold
	// Expires is the absolute expiry an opSetTTL, opSetIfAbsentTTL or
	// opCASTTL asked for, in Unix nanoseconds: the clock of its phase plus
	// its TTL.
	Expires int64
	// Now is the clock, in Unix nanoseconds, under which an opGet or a
	// conditional write ran: what decides whether the key is live.
	Now int64
}

// output is what a Lookup returned, or, for a conditional write, OK
// alone: whether it stored, swapped or deleted. Other writes return the
// zero output.
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

// stored returns the register a write of i leaves: i's value, with i's
// expiry if i asks for one and with none otherwise.
func (i input) stored() register {
	r := register{Present: true, Value: i.Value}
	if i.Kind.hasTTL() {
		r.Expires = i.Expires
	}
	return r
}

// step is the sequential specification, as opstate documents it: a key is
// absent when it has no value or its expiry has passed (now >= Expires);
// SetIfAbsent stores exactly when the key is absent at its clock;
// CompareAndSwap stores exactly when the key is live and holds Old, and
// like Set clears the expiry unless it is the WithTTL variant, which sets
// its own; CompareAndDelete deletes exactly when the key is live and holds
// Old. A conditional write's output says whether it changed the key, and
// one that did not leaves the register as it was.
func step(r register, i input, out output) (bool, register) {
	switch i.Kind {
	case opGet:
		return out == r.visibleAt(i.Now), r
	case opSet, opSetTTL:
		return true, i.stored()
	case opDelete:
		return true, register{}
	}
	seen := r.visibleAt(i.Now)
	var cond bool
	switch i.Kind {
	case opSetIfAbsent, opSetIfAbsentTTL:
		cond = !seen.OK
	case opCAS, opCASTTL, opCAD:
		cond = seen.OK && seen.Value == i.Old
	default:
		panic(fmt.Sprintf("linearcheck: unknown operation kind %d", i.Kind))
	}
	switch {
	case out != output{OK: cond}:
		return false, r
	case !cond:
		return true, r
	case i.Kind == opCAD:
		return true, register{}
	}
	return true, i.stored()
}

// model is a key-value store with expiry, partitioned by key: each
// partition is a register.
var model = porcupine.Model{
	Partition: partitionByKey,
	Init:      func() any { return register{} },
	Step: func(state, in, out any) (bool, any) {
		return step(state.(register), in.(input), out.(output))
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
		var what string
		switch i.Kind {
		case opSetIfAbsent:
			what = fmt.Sprintf("set-if-absent %s/%s %q", i.NS, i.Key, i.Value)
		case opSetIfAbsentTTL:
			what = fmt.Sprintf("set-if-absent %s/%s %q until %s", i.NS, i.Key, i.Value, clockString(i.Expires))
		case opCAS:
			what = fmt.Sprintf("cas %s/%s %q -> %q", i.NS, i.Key, i.Old, i.Value)
		case opCASTTL:
			what = fmt.Sprintf("cas %s/%s %q -> %q until %s", i.NS, i.Key, i.Old, i.Value, clockString(i.Expires))
		case opCAD:
			what = fmt.Sprintf("cad %s/%s %q", i.NS, i.Key, i.Old)
		default:
			return "?"
		}
		return fmt.Sprintf("%s @%s -> %v", what, clockString(i.Now), out.(output).OK)
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
		if changes(later) && w.Return < later.Call && later.Return < op.Call {
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

// changes reports whether op is a write that changed its key: a plain
// write, or a conditional one that reported it did.
func changes(op porcupine.Operation) bool {
	in := op.Input.(input)
	return in.Kind != opGet && (!in.Kind.conditional() || op.Output.(output).OK)
}

// writer returns the write in history whose value the read op returned.
func writer(history []porcupine.Operation, op porcupine.Operation) (porcupine.Operation, bool) {
	in, out := op.Input.(input), op.Output.(output)
	if in.Kind != opGet || !out.OK {
		return porcupine.Operation{}, false
	}
	for _, w := range history {
		if wi := w.Input.(input); changes(w) && wi.Kind != opDelete && wi.Kind != opCAD && wi.Value == out.Value {
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
	sia := func(key, v string, now int64) input {
		return input{Kind: opSetIfAbsent, NS: "a", Key: key, Value: v, Now: now}
	}
	siaTTL := func(key, v string, now, exp int64) input {
		return input{Kind: opSetIfAbsentTTL, NS: "a", Key: key, Value: v, Now: now, Expires: exp}
	}
	cas := func(key, old, v string, now int64) input {
		return input{Kind: opCAS, NS: "a", Key: key, Old: old, Value: v, Now: now}
	}
	casTTL := func(key, old, v string, now, exp int64) input {
		return input{Kind: opCASTTL, NS: "a", Key: key, Old: old, Value: v, Now: now, Expires: exp}
	}
	cad := func(key, old string, now int64) input {
		return input{Kind: opCAD, NS: "a", Key: key, Old: old, Now: now}
	}
	yes, no := output{OK: true}, output{}
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
		{"two racing set-if-absent both store", []porcupine.Operation{
			op(0, 0, 3, sia("k", "v1", t0), yes),
			op(1, 1, 2, sia("k", "v2", t0), yes),
		}, porcupine.Illegal},
		{"racing set-if-absent: one stores", []porcupine.Operation{
			op(0, 0, 3, sia("k", "v1", t0), no),
			op(1, 1, 2, sia("k", "v2", t0), yes),
			op(2, 4, 5, get("k", t0), val("v2")),
		}, porcupine.Ok},
		{"set-if-absent refused on an absent key", []porcupine.Operation{
			op(0, 0, 1, sia("k", "v1", t0), no),
		}, porcupine.Illegal},
		{"set-if-absent refused over an empty value", []porcupine.Operation{
			op(0, 0, 1, set("k", ""), output{}),
			op(0, 2, 3, sia("k", "v1", t0), no),
			op(1, 4, 5, get("k", t0), val("")),
		}, porcupine.Ok},
		{"set-if-absent stores over an empty value", []porcupine.Operation{
			op(0, 0, 1, set("k", ""), output{}),
			op(0, 2, 3, sia("k", "v1", t0), yes),
		}, porcupine.Illegal},
		{"set-if-absent refused over an expired value", []porcupine.Operation{
			op(0, 0, 1, setTTL("k", "v1", t0+10*ms), output{}),
			op(0, 2, 3, sia("k", "v2", t0+10*ms), no),
		}, porcupine.Illegal},
		{"set-if-absent stores over an expired value", []porcupine.Operation{
			op(0, 0, 1, setTTL("k", "v1", t0+10*ms), output{}),
			op(0, 2, 3, siaTTL("k", "v2", t0+10*ms, t0+20*ms), yes),
			op(1, 4, 5, get("k", t0+19*ms), val("v2")),
			op(1, 6, 7, get("k", t0+20*ms), absent),
		}, porcupine.Ok},
		{"set-if-absent refused a ms before the expiry, and what it found is read", []porcupine.Operation{
			op(0, 0, 1, setTTL("k", "v1", t0+10*ms), output{}),
			op(0, 2, 3, sia("k", "v2", t0+9*ms), no),
			op(1, 4, 5, get("k", t0+9*ms), val("v1")),
		}, porcupine.Ok},
		{"a refused set-if-absent stored anyway", []porcupine.Operation{
			op(0, 0, 1, set("k", "v1"), output{}),
			op(0, 2, 3, sia("k", "v2", t0), no),
			op(1, 4, 5, get("k", t0), val("v2")),
		}, porcupine.Illegal},
		{"cas swaps the value it was given", []porcupine.Operation{
			op(0, 0, 1, set("k", "v1"), output{}),
			op(0, 2, 3, cas("k", "v1", "v2", t0), yes),
			op(1, 4, 5, get("k", t0), val("v2")),
		}, porcupine.Ok},
		{"cas swaps a value it was not given", []porcupine.Operation{
			op(0, 0, 1, set("k", "v1"), output{}),
			op(0, 2, 3, cas("k", "v0", "v2", t0), yes),
		}, porcupine.Illegal},
		{"cas refused on a match", []porcupine.Operation{
			op(0, 0, 1, set("k", "v1"), output{}),
			op(0, 2, 3, cas("k", "v1", "v2", t0), no),
		}, porcupine.Illegal},
		{"cas of an absent key from the empty string", []porcupine.Operation{
			op(0, 0, 1, cas("k", "", "v2", t0), yes),
		}, porcupine.Illegal},
		{"two racing cas from one value both swap", []porcupine.Operation{
			op(0, 0, 1, set("k", "v1"), output{}),
			op(0, 2, 5, cas("k", "v1", "v2", t0), yes),
			op(1, 3, 4, cas("k", "v1", "v3", t0), yes),
		}, porcupine.Illegal},
		{"cas of an expired value", []porcupine.Operation{
			op(0, 0, 1, setTTL("k", "v1", t0+10*ms), output{}),
			op(0, 2, 3, cas("k", "v1", "v2", t0+10*ms), yes),
		}, porcupine.Illegal},
		{"cas clears the expiry", []porcupine.Operation{
			op(0, 0, 1, setTTL("k", "v1", t0+10*ms), output{}),
			op(0, 2, 3, cas("k", "v1", "v2", t0+9*ms), yes),
			op(1, 4, 5, get("k", t0+time.Hour.Nanoseconds()), absent),
		}, porcupine.Illegal},
		{"cas with a ttl sets its own expiry", []porcupine.Operation{
			op(0, 0, 1, setTTL("k", "v1", t0+10*ms), output{}),
			op(0, 2, 3, casTTL("k", "v1", "v2", t0+9*ms, t0+30*ms), yes),
			op(1, 4, 5, get("k", t0+29*ms), val("v2")),
			op(1, 6, 7, get("k", t0+30*ms), absent),
		}, porcupine.Ok},
		{"cas with a ttl kept the old expiry", []porcupine.Operation{
			op(0, 0, 1, setTTL("k", "v1", t0+10*ms), output{}),
			op(0, 2, 3, casTTL("k", "v1", "v2", t0+9*ms, t0+30*ms), yes),
			op(1, 4, 5, get("k", t0+10*ms), absent),
		}, porcupine.Illegal},
		{"cad deletes", []porcupine.Operation{
			op(0, 0, 1, set("k", "v1"), output{}),
			op(0, 2, 3, cad("k", "v1", t0), yes),
			op(1, 4, 5, get("k", t0), absent),
		}, porcupine.Ok},
		{"cad deleted, the value is still read", []porcupine.Operation{
			op(0, 0, 1, set("k", "v1"), output{}),
			op(0, 2, 3, cad("k", "v1", t0), yes),
			op(1, 4, 5, get("k", t0), val("v1")),
		}, porcupine.Illegal},
		{"cad of another value", []porcupine.Operation{
			op(0, 0, 1, set("k", "v1"), output{}),
			op(0, 2, 3, cad("k", "v0", t0), yes),
		}, porcupine.Illegal},
		{"cad of an expired value", []porcupine.Operation{
			op(0, 0, 1, setTTL("k", "v1", t0+10*ms), output{}),
			op(0, 2, 3, cad("k", "v1", t0+10*ms), yes),
		}, porcupine.Illegal},
		{"cad refused on a match", []porcupine.Operation{
			op(0, 0, 1, set("k", ""), output{}),
			op(0, 2, 3, cad("k", "", t0), no),
		}, porcupine.Illegal},
		{"cad racing a cas", []porcupine.Operation{
			op(0, 0, 1, set("k", "v1"), output{}),
			op(0, 2, 5, cas("k", "v1", "v2", t0), yes),
			op(1, 3, 6, cad("k", "v1", t0), no),
			op(2, 7, 8, get("k", t0), val("v2")),
		}, porcupine.Ok},
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
