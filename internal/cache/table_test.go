package cache

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"
)

// TestZeroBytes compares zeroBytes with a byte-by-byte reading, on words
// made of the bytes where carries and borrows between bytes would show.
func TestZeroBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	special := []uint64{0x00, 0x01, 0x7F, 0x80, 0x81, 0xFE, 0xFF}
	for range 100_000 {
		var v uint64
		for b := range 8 {
			x := rng.Uint64() & 0xFF
			if rng.IntN(2) == 0 {
				x = special[rng.IntN(len(special))]
			}
			v |= x << (8 * b)
		}
		var want uint64
		for b := range 8 {
			if v>>(8*b)&0xFF == 0 {
				want |= 0x80 << (8 * b)
			}
		}
		if got := zeroBytes(v); got != want {
			t.Fatalf("zeroBytes(%#016x) = %#016x; want %#016x", v, got, want)
		}
	}
}

// TestProbe compares table.probe with a slot-by-slot scan, from every
// start, on tables of random tags that wrap around their end.
func TestProbe(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 200 {
		tab := newTable(minSlots << (round % 3))
		n := uint64(len(tab.slots))
		for i := range n {
			// Few empty slots, so that probes run long and wrap.
			var tag uint8
			switch r := rng.IntN(20); {
			case r == 0:
				tag = tagEmpty
			case r < 4:
				tag = tagDead
			default:
				tag = uint8(2 + rng.IntN(6))
			}
			tab.setTagLocked(i, tag)
		}
		want := uint8(2 + rng.IntN(6))
		for start := range n {
			wantSlot, wantFound := uint64(0), false
			for k := range n {
				j := (start + k) & tab.mask
				if tg := tab.tag(j); tg == tagEmpty || tg == want {
					wantSlot, wantFound = j, tg == want
					break
				}
			}
			if tab.tag(wantSlot) != tagEmpty && !wantFound {
				continue // no empty slot and no match anywhere: probe would not return
			}
			got, found := tab.probe(start, want)
			if got != wantSlot || found != wantFound {
				t.Fatalf("round %d: probe(%d, %d) = %d, %v; want %d, %v", round, start, want, got, found, wantSlot, wantFound)
			}
		}
	}
}

// TestNodeOwnsItsBytes checks that a node holds copies of its key and
// value, never the caller's strings, which may be slices of a much larger
// buffer.
func TestNodeOwnsItsBytes(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	within := func(s string) bool {
		if s == "" {
			return false
		}
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		start := uintptr(unsafe.Pointer(unsafe.StringData(big)))
		return p >= start && p < start+uintptr(len(big))
	}
	for _, tt := range []struct {
		name       string
		key, value string
	}{
		{"short key, value", big[:10], big[100:140]},
		{"long key, value", big[:34], big[100:140]},
		{"long key, no value", big[:34], ""},
		{"long key, absent", big[:60], ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := New(1 << 20)
			c.End(c.Begin("ns", tt.key), &Entry{Value: tt.value, Absent: tt.value == ""})
			_, n := c.findLocked(c.hash("ns", tt.key), "ns", tt.key)
			if n == nil {
				t.Fatal("entry not cached")
			}
			if within(n.data) || within(n.key()) || within(n.entry().Value) {
				t.Errorf("node points into the caller's buffer: key %v, data %v", within(n.key()), within(n.data))
			}
			if n.key() != tt.key || n.entry().Value != tt.value {
				t.Errorf("node holds key %.20q value %.20q; want %.20q, %.20q", n.key(), n.entry().Value, tt.key, tt.value)
			}
		})
	}
}
