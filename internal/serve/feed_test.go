package serve

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/d8da9184/opstate"
)

// feedReader is a client of a feed in TestFeedModel: the namespace as it
// knows it from the events it took, re-read from the model at a reset.
type feedReader struct {
	cur   cursor
	state map[string]string
	every int // takes after one write in every so many
}

// apply applies the events of b, a take's output, to r.state; model is
// the namespace now, which a reset re-reads.
func (r *feedReader) apply(t *testing.T, b []byte, model map[string]string) {
	t.Helper()
	for _, ev := range strings.Split(strings.TrimSuffix(string(b), "\n\n"), "\n\n") {
		if ev == "" {
			continue
		}
		data, ok := strings.CutPrefix(ev, "data: ")
		var d struct{ Op, Key, Value string }
		if !ok || json.Unmarshal([]byte(data), &d) != nil {
			t.Fatalf("event %q", ev)
		}
		switch d.Op {
		case "set":
			r.state[d.Key] = d.Value
		case "delete", "expire":
			delete(r.state, d.Key)
		case "reset":
			r.state = maps.Clone(model)
		case "stale":
		default:
			t.Fatalf("event %q", ev)
		}
	}
}

// TestFeedModel checks a feed against a plain model of its namespace:
// random sets, deletes, namespace deletions (a reset) and outages (stale)
// are recorded while readers take what they are owed at different paces,
// the slowest falling behind by more keys than the feed keeps, or more
// bytes; once every reader has taken all it is owed, each must know the
// namespace as the model does, and the bounds must hold meanwhile.
func TestFeedModel(t *testing.T) {
	for _, tt := range []struct {
		name   string
		keys   int
		value  int // bytes
		writes int
		resets bool // whether the namespace is deleted, and outages happen
	}{
		{"few keys", 20, 10, 5000, true},
		{"more keys than kept", 2 * opstate.MaxPendingEvents, 10, 20000, false},
		{"more keys than kept, resets", 2 * opstate.MaxPendingEvents, 10, 20000, true},
		{"more bytes than kept", 3000, 16 << 10, 8000, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tt.keys)))
			f := newFeed("ns", func() {})
			model := map[string]string{}
			var readers []*feedReader
			for _, every := range []int{1, 3, 50, 2000, 1 << 30} {
				readers = append(readers, &feedReader{cur: f.start(), state: map[string]string{}, every: every})
			}
			resets := 0
			for i := range tt.writes {
				k := fmt.Sprint("k", rng.IntN(tt.keys))
				p := rng.IntN(1000)
				if !tt.resets {
					p = max(p, 4)
				}
				switch {
				case p < 2:
					clear(model)
					f.record(opstate.Event{Namespace: "ns", Op: opstate.OpReset})
				case p < 4:
					f.record(opstate.Event{Namespace: "ns", Op: opstate.OpStale})
				case p < 200:
					delete(model, k)
					f.record(opstate.Event{Namespace: "ns", Key: k, Op: opstate.OpDelete})
				default:
					v := fmt.Sprintf("%d-%s", i, strings.Repeat("v", rng.IntN(tt.value)))
					model[k] = v
					f.record(opstate.Event{Namespace: "ns", Key: k, Op: opstate.OpSet, Value: v})
				}
				if f.n > opstate.MaxPendingEvents || f.n > 1 && f.size > feedBytes || len(f.byKey) != f.n {
					t.Fatalf("write %d: %d entries, %d bytes, %d keys indexed; bounds %d entries, %d bytes",
						i, f.n, f.size, len(f.byKey), opstate.MaxPendingEvents, feedBytes)
				}
				for _, r := range readers {
					if i%r.every == 0 {
						b, _ := f.take(&r.cur, nil)
						if strings.HasPrefix(string(b), "data: {\"op\":\"reset\"") {
							resets++
						}
						r.apply(t, b, model)
					}
				}
			}
			for i, r := range readers {
				for more := true; more; {
					var b []byte
					b, more = f.take(&r.cur, nil)
					r.apply(t, b, model)
				}
				if !maps.Equal(r.state, model) {
					t.Errorf("reader %d (every %d writes): %d keys, model %d; differ", i, r.every, len(r.state), len(model))
				}
				if r.cur.seq != f.seq {
					t.Errorf("reader %d at %d after taking all; want %d", i, r.cur.seq, f.seq)
				}
			}
			t.Logf("%d resets taken", resets)
		})
	}
}

// TestFeedStale checks what a stale event's readers get: a reader that
// has not taken it gets it once, before the changes after it; a reader
// behind a stale event and the reset that ended the outage gets the reset
// alone.
func TestFeedStale(t *testing.T) {
	f := newFeed("ns", func() {})
	a, b := f.start(), f.start()
	f.record(opstate.Event{Namespace: "ns", Op: opstate.OpStale})
	got, _ := f.take(&a, nil)
	if want := `data: {"op":"stale","namespace":"ns"}` + "\n\n"; string(got) != want {
		t.Errorf("take after stale = %q; want %q", got, want)
	}
	f.record(opstate.Event{Namespace: "ns", Op: opstate.OpReset})
	f.record(opstate.Event{Namespace: "ns", Key: "k", Op: opstate.OpSet, Value: "v"})
	for _, tt := range []struct {
		name string
		cur  *cursor
		want string
	}{
		{"took the stale event", &a, `data: {"op":"reset","namespace":"ns"}` + "\n\n"},
		{"behind both", &b, `data: {"op":"reset","namespace":"ns"}` + "\n\n"},
	} {
		var out []byte
		for more := true; more; {
			var got []byte
			got, more = f.take(tt.cur, nil)
			out = append(out, got...)
		}
		if want := tt.want + `data: {"op":"set","namespace":"ns","key":"k","value":"v"}` + "\n\n"; string(out) != want {
			t.Errorf("%s: took %q; want %q", tt.name, out, want)
		}
	}
}
