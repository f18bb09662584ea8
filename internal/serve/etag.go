package serve

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"maps"
	"slices"
	"strings"
)

// valueETag returns the strong entity tag of a key's value: the SHA-256
// of its bytes, quoted. Two values have one tag only if they are equal
// (barring a collision of SHA-256), which is what lets If-Match stand for
// the value itself in a compare-and-swap.
func valueETag(v string) string {
	sum := sha256.Sum256([]byte(v))
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:]) + `"`
}

// setETag returns the strong entity tag of a namespace's keys and values:
// the SHA-256 of each key and value in key order, each preceded by its
// length, so that no two different sets write the same bytes.
func setETag(m map[string]string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, k := range slices.Sorted(maps.Keys(m)) {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(k)))])
		h.Write([]byte(k))
		v := m[k]
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(v)))])
		h.Write([]byte(v))
	}
	return `"` + base64.RawURLEncoding.EncodeToString(h.Sum(nil)) + `"`
}

// etagList is the value of an If-Match or If-None-Match header.
type etagList struct {
	any  bool     // "*"
	tags []string // the opaque tags, unquoted
	weak []bool   // whether tags[i] was W/
}

// parseETags parses an If-Match or If-None-Match header: "*", or entity
// tags separated by commas. It is lenient: a tag without its quotes is
// taken as the tag it would quote (some clients send them so).
func parseETags(h string) etagList {
	var l etagList
	for part := range strings.SplitSeq(h, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if part == "*" {
			l.any = true
			continue
		}
		weak := false
		if rest, ok := strings.CutPrefix(part, "W/"); ok {
			weak, part = true, rest
		}
		if len(part) >= 2 && part[0] == '"' && part[len(part)-1] == '"' {
			part = part[1 : len(part)-1]
		}
		l.tags = append(l.tags, part)
		l.weak = append(l.weak, weak)
	}
	return l
}

// matchStrong reports whether etag, one of this package's quoted strong
// tags, is in l by the strong comparison of If-Match: a weak tag never
// matches.
func (l etagList) matchStrong(etag string) bool {
	if l.any {
		return true
	}
	t := strings.Trim(etag, `"`)
	for i, x := range l.tags {
		if !l.weak[i] && x == t {
			return true
		}
	}
	return false
}

// matchWeak reports whether etag is in l by the weak comparison of
// If-None-Match.
func (l etagList) matchWeak(etag string) bool {
	if l.any {
		return true
	}
	t := strings.Trim(etag, `"`)
	return slices.Contains(l.tags, t)
}
