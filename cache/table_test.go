package cache

import (
	"math/rand/v2"
	"testing"
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
