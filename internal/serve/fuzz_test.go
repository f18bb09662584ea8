package serve

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// escapeAll percent-encodes every byte of name but letters and digits.
func escapeAll(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// FuzzRoute checks that any namespace and key, percent-encoded, reach
// the key endpoint as themselves, and the events, history and revert
// endpoints likewise; and that parseRoute takes any path without
// panicking.
func FuzzRoute(f *testing.F) {
	for _, s := range [][2]string{{"ns", "k"}, {"a/b", ".."}, {"%2F", "\xff"}, {"", "x"}, {"events", "keys"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, ns, key string) {
		rt, err := parseRoute("/v1/namespaces/" + escapeAll(ns) + "/keys/" + escapeAll(key))
		if err != nil || rt.kind != routeKey || rt.ns != ns || rt.key != key {
			t.Fatalf("key path of %q/%q = %+v, %v", ns, key, rt, err)
		}
		rt, err = parseRoute("/v1/namespaces/" + escapeAll(ns) + "/events")
		if err != nil || rt.kind != routeEvents || rt.ns != ns {
			t.Fatalf("events path of %q = %+v, %v", ns, rt, err)
		}
		rt, err = parseRoute("/v1/namespaces/" + escapeAll(ns) + "/history")
		if err != nil || rt.kind != routeHistory || rt.ns != ns {
			t.Fatalf("history path of %q = %+v, %v", ns, rt, err)
		}
		rt, err = parseRoute("/v1/namespaces/" + escapeAll(ns) + "/keys/" + escapeAll(key) + "/revert")
		if err != nil || rt.kind != routeRevert || rt.ns != ns || rt.key != key {
			t.Fatalf("revert path of %q/%q = %+v, %v", ns, key, rt, err)
		}
		parseRoute("/" + ns + "/" + key) // any bytes: no panic
		parseETags(ns + key)
	})
}

// FuzzParseTokens checks that a token file of any bytes is parsed or
// refused without panicking, and that a refusal quotes no field (but the
// name given twice).
func FuzzParseTokens(f *testing.F) {
	f.Add("ci read sha256:" + strings.Repeat("ab", 32) + "\n")
	f.Add("SECRETSECRET\n")
	f.Add("a read SECRETSECRET\n# c\n")
	f.Add("0 000000000000 0") // a scope field once quoted in the error
	f.Fuzz(func(t *testing.T, file string) {
		_, err := ParseTokens(strings.NewReader(file), "f")
		if err == nil {
			return
		}
		dup := strings.Contains(err.Error(), "is named on line")
		for _, line := range strings.Split(file, "\n") {
			fields := strings.Fields(line)
			for i, fl := range fields {
				if i == 0 && dup || len(fl) < 12 {
					continue // short strings occur in messages by chance
				}
				if strings.Contains(err.Error(), fl) {
					t.Fatalf("error %q quotes field %q of line %q", err, fl, line)
				}
			}
		}
	})
}

// FuzzAppendChange checks that a change of any names, values and actor
// is written as valid JSON that gives them back exactly: as JSON strings
// when valid UTF-8, else base64 in the field ending in "_base64".
func FuzzAppendChange(f *testing.F) {
	f.Add("ns", "k", "before", "after", "alice")
	f.Add("\xff", "<img src=x onerror=alert(1)>", "\u2028", "\x00\"\\", "")
	f.Fuzz(func(t *testing.T, ns, key, before, after, actor string) {
		c := opstate.Change{Seq: 7, Time: time.UnixMilli(1e12), Namespace: ns, Key: key, Op: opstate.OpSet,
			Existed: true, Before: before, After: after, Expires: time.UnixMilli(2e12), Actor: actor}
		b := appendChange(nil, c)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("appendChange(%+v) = %s: not JSON: %v", c, b, err)
		}
		for name, want := range map[string]string{"namespace": ns, "key": key, "before": before, "after": after, "actor": actor} {
			var got string
			if s, ok := m[name].(string); ok {
				got = s
			} else if s, ok := m[name+"_base64"].(string); ok {
				d, err := base64.StdEncoding.DecodeString(s)
				if err != nil {
					t.Fatalf("%s_base64 %q: %v", name, s, err)
				}
				got = string(d)
			} else {
				t.Fatalf("%s missing from %s", name, b)
			}
			if got != want {
				t.Fatalf("%s = %q; want %q (%s)", name, got, want, b)
			}
		}
		if m["seq"] != 7.0 || m["op"] != "set" || m["existed"] != true || m["time"] != "2001-09-09T01:46:40.000Z" ||
			m["expires"] != "2033-05-18T03:33:20.000Z" {
			t.Fatalf("fixed fields wrong: %s", b)
		}
	})
}
