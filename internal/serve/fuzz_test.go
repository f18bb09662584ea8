package serve

import (
	"fmt"
	"strings"
	"testing"
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
// the key endpoint as themselves, and the events endpoint likewise; and
// that parseRoute takes any path without panicking.
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
