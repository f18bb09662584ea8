package opstate_test

import (
	"cmp"
	"fmt"
	"slices"
)

// checkOrder checks that reads agree on the order of writes: a read r1
// that began after write b completed and found the key holding another
// value, of write a, shows that a was committed after b. So once a has
// completed too, no read may return b any more: it is stale, as much as
// if a had begun after b ended. (While a is in flight, a read may still
// return b: the write is not acknowledged yet.)
func (st *stress) checkOrder(reads []sharedRead) []error {
	type seen struct {
		r   *sharedRead
		x   *sharedWrite // what r returned
		beg int64        // x.end: from then on, r's value must not be undone
	}
	byKey := make(map[stressKey][]seen)
	for i := range reads {
		r := &reads[i]
		if !r.ok {
			continue
		}
		if x := st.hist[r.k].byValue[r.value]; x != nil {
			byKey[r.k] = append(byKey[r.k], seen{r, x, x.end})
		}
	}
	var errs []error
	for _, ss := range byKey {
		slices.SortFunc(ss, func(a, b seen) int { return cmp.Compare(a.r.start, b.r.start) })
		// best[i] holds the read of ss[i:] whose write completed first,
		// and the first of those with another write.
		type top2 struct{ a, b int } // indexes in ss; -1 for none
		best := make([]top2, len(ss)+1)
		best[len(ss)] = top2{-1, -1}
		for i := len(ss) - 1; i >= 0; i-- {
			t := best[i+1]
			switch {
			case t.a < 0:
				t = top2{i, -1}
			case ss[i].beg < ss[t.a].beg && ss[i].x != ss[t.a].x:
				t = top2{i, t.a}
			case ss[i].beg < ss[t.a].beg:
				t = top2{i, t.b}
			case ss[i].x != ss[t.a].x && (t.b < 0 || ss[i].beg < ss[t.b].beg):
				t = top2{t.a, i}
			}
			best[i] = t
		}
		for _, b := range ss {
			i, _ := slices.BinarySearchFunc(ss, b.x.end, func(y seen, t int64) int { return cmp.Compare(y.r.start, t+1) })
			a := best[i].a
			if a >= 0 && ss[a].x == b.x {
				a = best[i].b
			}
			if a >= 0 && ss[a].beg < b.r.start {
				errs = append(errs, fmt.Errorf("%v: stale: %v began after %v ended and found %v, a later write, which ended before this read began",
					b.r, ss[a].r, b.x, ss[a].x))
			}
		}
	}
	return errs
}

// sharedWrite is one logged write to a shared key. Its start and end are
// logical times taken before the call and after it returned; expLo and
// expHi bound the expiry of a SetWithTTL, and are 0 for a Set.
type sharedWrite struct {
	start, end   int64
	del          bool
	ns           bool // a DeleteNamespace
	value        string
	expLo, expHi int64
	pruned       bool // superseded by a write completed before a round ended
}

func (x *sharedWrite) String() string {
	var op string
	switch {
	case x.ns:
		op = "DeleteNamespace"
	case x.del:
		op = "Delete"
	case x.expHi == 0:
		op = fmt.Sprintf("Set %q", x.value)
	default:
		op = fmt.Sprintf("SetWithTTL %q expiring in [%s, %s]", x.value, stressClock(x.expLo), stressClock(x.expHi))
	}
	return fmt.Sprintf("%s at [%d, %d]", op, x.start, x.end)
}

// certainlyVisible reports whether x, as the last write, makes a read at
// any clock up to c2 find the key.
func (x *sharedWrite) certainlyVisible(c2 int64) bool {
	return !x.del && (x.expLo == 0 || x.expLo > c2)
}

// mayHide reports whether x, as the last write, can make a read at some
// clock up to c2 find the key missing.
func (x *sharedWrite) mayHide(c2 int64) bool {
	return x.del || x.expLo != 0 && x.expLo <= c2
}

// sharedRead is one logged read of a shared key: what it returned, its
// logical times and the clock before and after it.
type sharedRead struct {
	k          stressKey
	op         string
	start, end int64
	c1, c2     int64
	value      string
	ok         bool
}

func (r sharedRead) String() string {
	got := "missing"
	if r.ok {
		got = fmt.Sprintf("%q", r.value)
	}
	return fmt.Sprintf("%s(%q, %q) at [%d, %d], clock in [%s, %s], = %s", r.op, r.k.ns, r.k.key, r.start, r.end, stressClock(r.c1), stressClock(r.c2), got)
}

// sharedHistory is the log of writes to one shared key. Between rounds it keeps
// only the writes that no other completed write followed (prune); the
// others stay in byValue, marked pruned, so that reading one is reported.
type sharedHistory struct {
	writes  []*sharedWrite
	byValue map[string]*sharedWrite

	// built by index
	byStart   []*sharedWrite
	byEnd     []*sharedWrite
	sufMinEnd []int64 // sufMinEnd[i] = min end of byStart[i:]
	preMaxEnd []int64 // preMaxEnd[i] = max end of byStart[:i+1]
}

func (h *sharedHistory) add(x *sharedWrite) {
	h.writes = append(h.writes, x)
	if !x.del {
		h.byValue[x.value] = x
	}
}

func (h *sharedHistory) index() {
	h.byStart = slices.Clone(h.writes)
	slices.SortFunc(h.byStart, func(a, b *sharedWrite) int { return cmp.Compare(a.start, b.start) })
	h.byEnd = slices.Clone(h.writes)
	slices.SortFunc(h.byEnd, func(a, b *sharedWrite) int { return cmp.Compare(a.end, b.end) })
	n := len(h.byStart)
	h.sufMinEnd = make([]int64, n)
	h.preMaxEnd = make([]int64, n)
	for i := n - 1; i >= 0; i-- {
		h.sufMinEnd[i] = h.byStart[i].end
		if i+1 < n {
			h.sufMinEnd[i] = min(h.sufMinEnd[i], h.sufMinEnd[i+1])
		}
	}
	for i, x := range h.byStart {
		h.preMaxEnd[i] = x.end
		if i > 0 {
			h.preMaxEnd[i] = max(h.preMaxEnd[i], h.preMaxEnd[i-1])
		}
	}
}

// prune drops the writes that a completed write followed; every write has
// completed when it runs. A later read returning one of them is stale, and
// the writes kept still justify every absence the dropped ones could: the
// last write to start is kept, and it either shows the key (then it
// supersedes them) or may hide it.
func (h *sharedHistory) prune() {
	var last int64
	for _, x := range h.writes {
		last = max(last, x.start)
	}
	kept := h.writes[:0]
	for _, x := range h.writes {
		if x.end > last {
			kept = append(kept, x)
		} else {
			x.pruned = true
		}
	}
	clear(h.writes[len(kept):])
	h.writes = kept
}

// check reports an error if no order of the logged writes that respects
// their logical times can explain r, as far as these tests tell.
func (h *sharedHistory) check(r sharedRead) error {
	if r.ok {
		x := h.byValue[r.value]
		switch {
		case x == nil:
			return fmt.Errorf("%v: value never written to the key", r)
		case x.start > r.end:
			return fmt.Errorf("%v: value written by %v, which began after the read", r, x)
		case x.expHi != 0 && r.c1 >= x.expHi:
			return fmt.Errorf("%v: value written by %v, which had expired", r, x)
		case x.pruned:
			return fmt.Errorf("%v: stale: %v was overwritten by a write completed before the read began", r, x)
		}
		// A write that began after x ended and ended before r began
		// replaced x before r.
		i, _ := slices.BinarySearchFunc(h.byStart, x.end, func(y *sharedWrite, t int64) int { return cmp.Compare(y.start, t+1) })
		if i < len(h.byStart) && h.sufMinEnd[i] < r.start {
			for _, y := range h.byStart[i:] {
				if y.end < r.start {
					return fmt.Errorf("%v: stale: %v was replaced by %v", r, x, y)
				}
			}
		}
		return nil
	}

	// The read found the key missing. Find the last-starting write that
	// completed before r began and certainly shows the key at r's clock.
	var shown *sharedWrite
	j, _ := slices.BinarySearchFunc(h.byEnd, r.start, func(y *sharedWrite, t int64) int { return cmp.Compare(y.end, t) })
	for j--; j >= 0; j-- {
		y := h.byEnd[j]
		if shown != nil && y.end < shown.start {
			break // no earlier write starts later than shown
		}
		if y.certainlyVisible(r.c2) && (shown == nil || y.start > shown.start) {
			shown = y
		}
	}
	if shown == nil {
		return nil // the key was never certainly there
	}
	// Some write that may hide the key must have come after shown: one
	// that began before r ended and ended after shown began.
	i, _ := slices.BinarySearchFunc(h.byStart, r.end, func(y *sharedWrite, t int64) int { return cmp.Compare(y.start, t) })
	for i--; i >= 0 && h.preMaxEnd[i] > shown.start; i-- {
		if y := h.byStart[i]; y.end > shown.start && y.mayHide(r.c2) {
			return nil
		}
	}
	return fmt.Errorf("%v: stale: %v completed before the read began, and no later write deletes the key or lets it expire", r, shown)
}
