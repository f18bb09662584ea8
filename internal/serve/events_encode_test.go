package serve

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/d8da9184/opstate"
)

// referenceEvent is an event's JSON data as encoding/json writes it: the
// model appendEvent must match byte for byte.
func referenceEvent(ev opstate.Event) []byte {
	type data struct {
		Op              string  `json:"op"`
		Namespace       string  `json:"namespace,omitempty"`
		NamespaceBase64 string  `json:"namespace_base64,omitempty"`
		Key             string  `json:"key,omitempty"`
		KeyBase64       string  `json:"key_base64,omitempty"`
		Value           *string `json:"value,omitempty"`
		ValueBase64     *string `json:"value_base64,omitempty"`
	}
	exact := func(s string) (plain, b64 string) {
		if utf8.ValidString(s) {
			return s, ""
		}
		return "", base64.StdEncoding.EncodeToString([]byte(s))
	}
	d := data{Op: ev.Op.String()}
	d.Namespace, d.NamespaceBase64 = exact(ev.Namespace)
	if ev.Op != opstate.OpReset && ev.Op != opstate.OpStale {
		d.Key, d.KeyBase64 = exact(ev.Key)
	}
	if ev.Op == opstate.OpSet {
		v, b := exact(ev.Value)
		if utf8.ValidString(ev.Value) {
			d.Value = &v
		} else {
			d.ValueBase64 = &b
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d); err != nil {
		panic(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// eventStrings are names and values that JSON escapes, or cannot hold.
func eventStrings() []string {
	s := []string{"", "plain", `quote " and \ backslash`, "<b>&amp;</b>", "caf\u00e9 \U0001F600",
		"line\u2028sep\u2029para", "\x7f del", "\xff\xfe not UTF-8", "ok then \xc3", "\u2028"}
	for c := range 0x20 {
		s = append(s, "a"+string(rune(c))+"b")
	}
	return s
}

// TestAppendEvent checks the hand-written encoding of an event against
// encoding/json's, for every op and strings that need escaping or are
// not UTF-8.
func TestAppendEvent(t *testing.T) {
	strs := eventStrings()
	for _, op := range []opstate.Op{opstate.OpSet, opstate.OpDelete, opstate.OpExpire, opstate.OpReset, opstate.OpStale} {
		for i, str := range strs {
			ev := opstate.Event{Namespace: strs[(i+1)%len(strs)], Key: str, Op: op, Value: strs[(i+2)%len(strs)]}
			for _, ev := range []opstate.Event{ev, {Namespace: "ns", Key: "k", Op: op, Value: str}, {Namespace: str, Key: "k", Op: op}} {
				if got, want := appendEvent(nil, ev), referenceEvent(ev); !bytes.Equal(got, want) {
					t.Errorf("appendEvent(%+q) = %s; want %s", ev, got, want)
				}
			}
		}
	}
}

// FuzzAppendEvent checks the encoding of any event against
// encoding/json's.
func FuzzAppendEvent(f *testing.F) {
	for _, s := range eventStrings() {
		f.Add(int(opstate.OpSet), "ns", s, s)
	}
	f.Fuzz(func(t *testing.T, op int, ns, key, value string) {
		ev := opstate.Event{Namespace: ns, Key: key, Op: opstate.Op(op%5 + 1), Value: value}
		if got, want := appendEvent(nil, ev), referenceEvent(ev); !bytes.Equal(got, want) {
			t.Errorf("appendEvent(%+q) = %s; want %s", ev, got, want)
		}
	})
}
