package persist_test

import (
	"fmt"
	"testing"

	"github.com/d8da9184/opstate/internal/persist"
)

// TestHistoryPages checks what recording history adds to a write, in
// pages written to the log (what a lone write's cost follows, and what
// stays the same from one machine to another): nothing for a namespace
// that keeps none, though another does, and one page for a namespace that
// keeps one (the change appended to the history; an index of its keys,
// or an AUTOINCREMENT counter, would be one more each).
func TestHistoryPages(t *testing.T) {
	framesPerWrite := func(keeper string) float64 {
		db := mustOpen(t, "")
		if keeper != "" {
			setHistory(t, db, keeper, 1000)
		}
		for i := range 10000 {
			apply(t, db, t0, putW("flags", fmt.Sprintf("key-%05d", i), "v", 0))
		}
		const n = 2000
		before := db.Logged()
		for i := range n {
			apply(t, db, t0, persist.Write{Kind: persist.Put, Namespace: "flags", Key: fmt.Sprintf("key-%05d", (i*7919)%10000), Value: fmt.Sprint(i), Actor: "a"})
		}
		return float64(db.Logged()-before) / n
	}
	none, other, own := framesPerWrite(""), framesPerWrite("audited"), framesPerWrite("flags")
	t.Logf("frames a write: no history %.2f, another namespace's %.2f, its own %.2f", none, other, own)
	if other > none+0.05 {
		t.Errorf("a write to a namespace without history, beside one with, appends %.2f frames; want %.2f as without any", other, none)
	}
	if own > none+1.1 {
		t.Errorf("a write to a namespace with history appends %.2f frames; want at most one more than %.2f", own, none)
	}
}
