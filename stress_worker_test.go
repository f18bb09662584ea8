package opstate_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// stressWorker is one goroutine of a run, with its model of the keys it
// owns and its log of the round's shared-key operations.
type stressWorker struct {
	id     int
	st     *stress
	rng    *rand.Rand
	ownNS  []string               // none for a reader
	reader bool                   // reads shared keys until the workers' round ends
	model  map[stressKey]ownEntry // a missing entry is a missing key
	seq    int                    // makes every value unique
	err    error                  // what stopped the worker

	writes map[stressKey][]*sharedWrite
	reads  []sharedRead
}

// ownEntry is the model of a key that one worker alone writes.
type ownEntry struct {
	value string
	// expLo and expHi bound the key's expiry in Unix nanoseconds; both are 0
	// when it never expires.
	expLo, expHi int64
}

// ownAllows reports whether a read whose clock reading lay in [c1, c2] may
// find the key of e (nil: not in the model) present, or missing.
func ownAllows(e *ownEntry, present bool, c1, c2 int64) bool {
	switch {
	case e == nil:
		return !present
	case e.expHi == 0:
		return present
	case present:
		return c1 < e.expHi // some clock reading precedes some expiry
	default:
		return c2 >= e.expLo
	}
}

// ownWant describes what ownAllows allows, for messages.
func ownWant(e *ownEntry, c1, c2 int64) string {
	switch {
	case e == nil:
		return "missing"
	case !ownAllows(e, false, c1, c2):
		return fmt.Sprintf("%.20q", e.value)
	case !ownAllows(e, true, c1, c2):
		return fmt.Sprintf("missing (expired at %s, clock at %s)", stressClock(e.expHi), stressClock(c1))
	}
	return fmt.Sprintf("%.20q or missing (expiry in [%s, %s], clock in [%s, %s])",
		e.value, stressClock(e.expLo), stressClock(e.expHi), stressClock(c1), stressClock(c2))
}

// stressClock shows a clock reading as the time since stressStart.
func stressClock(ns int64) string {
	return time.Duration(ns - stressStart).String()
}

func (w *stressWorker) entry(k stressKey) *ownEntry {
	if e, ok := w.model[k]; ok {
		return &e
	}
	return nil
}

// checkOwn checks a Lookup (op "Lookup") or Get (op "Get", where ok is
// unknown) of own key k.
func (w *stressWorker) checkOwn(op string, k stressKey, got string, ok bool, c1, c2 int64) error {
	e := w.entry(k)
	var good bool
	switch {
	case op == "Get" && got == "":
		good = ownAllows(e, false, c1, c2) || ownAllows(e, true, c1, c2) && e.value == ""
	case op == "Get":
		good = ownAllows(e, true, c1, c2) && got == e.value
	case ok:
		good = ownAllows(e, true, c1, c2) && got == e.value
	default:
		good = ownAllows(e, false, c1, c2) && got == ""
	}
	if good {
		return nil
	}
	if op == "Get" {
		return fmt.Errorf("Get(%q, %q) = %.20q; want %s", k.ns, k.key, got, ownWant(e, c1, c2))
	}
	return fmt.Errorf("%s(%q, %q) = %.20q, %v; want %s", op, k.ns, k.key, got, ok, ownWant(e, c1, c2))
}

func (w *stressWorker) checkOwnList(ns string, m map[string]string, c1, c2 int64) error {
	for key := range m {
		if !slices.Contains(ownKeys(ns), stressKey{ns, key}) {
			return fmt.Errorf("List(%q) returned key %q, which was never written", ns, key)
		}
	}
	for _, k := range ownKeys(ns) {
		v, ok := m[k.key]
		if err := w.checkOwn("Lookup", k, v, ok, c1, c2); err != nil {
			return fmt.Errorf("List(%q): key %q: %w", ns, k.key, err)
		}
	}
	return nil
}

func (w *stressWorker) now() int64 { return w.st.clock.Load() }

func (w *stressWorker) ownKey() stressKey {
	return stressKey{w.ownNS[w.rng.IntN(stressOwnNS)], fmt.Sprintf("k%d", w.rng.IntN(stressOwnKeys))}
}

func (w *stressWorker) sharedKey() stressKey {
	return stressKey{w.st.sharedNS[w.rng.IntN(stressSharedNS)], fmt.Sprintf("k%d", w.rng.IntN(stressSharedKeys))}
}

// ownValue returns a new value for an own key: sometimes empty, sometimes
// too large for the small cache.
func (w *stressWorker) ownValue() string {
	w.seq++
	switch w.rng.IntN(20) {
	case 0:
		return ""
	case 1:
		return fmt.Sprintf("o%d-%d-%s", w.id, w.seq, strings.Repeat("x", 2100))
	}
	return fmt.Sprintf("o%d-%d", w.id, w.seq)
}

func (w *stressWorker) sharedValue() string {
	w.seq++
	return fmt.Sprintf("g%d-%d", w.id, w.seq)
}

// ttl returns a TTL from a millisecond to an hour, in nanoseconds so that
// the expiry gets rounded.
func (w *stressWorker) ttl() time.Duration {
	base := []time.Duration{0, 30 * time.Millisecond, 100 * time.Millisecond, 400 * time.Millisecond, time.Second, time.Hour}
	return base[w.rng.IntN(len(base))] + time.Duration(1+w.rng.Int64N(int64(time.Millisecond)))
}

// expiryAt is when a key written at now with ttl expires, as SetWithTTL
// documents it: now+ttl rounded up to the millisecond.
func expiryAt(now int64, ttl time.Duration) int64 {
	const ms = int64(time.Millisecond)
	exp := now + int64(ttl)
	if r := exp % ms; r > 0 {
		exp += ms - r
	}
	return exp
}

// step performs one random operation and checks its result.
func (w *stressWorker) step() error {
	s := w.st.s
	switch n := w.rng.IntN(100); {
	case n < 14: // Get or Lookup an own key
		k := w.ownKey()
		op := "Lookup"
		var v string
		var ok bool
		var err error
		c1 := w.now()
		if n < 7 {
			op = "Get"
			v, err = s.Get(k.ns, k.key)
		} else {
			v, ok, err = s.Lookup(k.ns, k.key)
		}
		c2 := w.now()
		if err != nil {
			return fmt.Errorf("%s(%q, %q): %w", op, k.ns, k.key, err)
		}
		return w.checkOwn(op, k, v, ok, c1, c2)

	case n < 26: // Set an own key
		k, v := w.ownKey(), w.ownValue()
		if err := s.Set(k.ns, k.key, v); err != nil {
			return fmt.Errorf("Set(%q, %q): %w", k.ns, k.key, err)
		}
		w.model[k] = ownEntry{value: v}

	case n < 35: // SetWithTTL an own key
		k, v, ttl := w.ownKey(), w.ownValue(), w.ttl()
		c1 := w.now()
		err := s.SetWithTTL(k.ns, k.key, v, ttl)
		c2 := w.now()
		if err != nil {
			return fmt.Errorf("SetWithTTL(%q, %q, %v): %w", k.ns, k.key, ttl, err)
		}
		w.model[k] = ownEntry{value: v, expLo: expiryAt(c1, ttl), expHi: expiryAt(c2, ttl)}

	case n < 40: // Delete an own key
		k := w.ownKey()
		if err := s.Delete(k.ns, k.key); err != nil {
			return fmt.Errorf("Delete(%q, %q): %w", k.ns, k.key, err)
		}
		delete(w.model, k)

	case n < 42: // DeleteNamespace an own namespace
		ns := w.ownNS[w.rng.IntN(stressOwnNS)]
		if err := s.DeleteNamespace(ns); err != nil {
			return fmt.Errorf("DeleteNamespace(%q): %w", ns, err)
		}
		for _, k := range ownKeys(ns) {
			delete(w.model, k)
		}

	case n < 46: // List an own namespace
		ns := w.ownNS[w.rng.IntN(stressOwnNS)]
		c1 := w.now()
		m, err := s.List(ns)
		c2 := w.now()
		if err != nil {
			return fmt.Errorf("List(%q): %w", ns, err)
		}
		return w.checkOwnList(ns, m, c1, c2)

	case n < 60: // Get or Lookup a shared key
		return w.readShared()

	case n < 74: // Set or SetWithTTL a shared key
		k := w.sharedKey()
		x := &sharedWrite{value: w.sharedValue()}
		w.writes[k] = append(w.writes[k], x)
		var err error
		if n < 69 {
			x.start = w.st.tick.Add(1)
			err = s.Set(k.ns, k.key, x.value)
			x.end = w.st.tick.Add(1)
		} else {
			ttl := w.ttl()
			x.start = w.st.tick.Add(1)
			c1 := w.now()
			err = s.SetWithTTL(k.ns, k.key, x.value, ttl)
			c2 := w.now()
			x.end = w.st.tick.Add(1)
			x.expLo, x.expHi = expiryAt(c1, ttl), expiryAt(c2, ttl)
		}
		if err != nil {
			return fmt.Errorf("set %q/%q: %w", k.ns, k.key, err)
		}

	case n < 78: // Delete a shared key
		k := w.sharedKey()
		x := &sharedWrite{del: true}
		w.writes[k] = append(w.writes[k], x)
		x.start = w.st.tick.Add(1)
		err := s.Delete(k.ns, k.key)
		x.end = w.st.tick.Add(1)
		if err != nil {
			return fmt.Errorf("Delete(%q, %q): %w", k.ns, k.key, err)
		}

	case n < 79: // DeleteNamespace a shared namespace: a Delete of each key
		ns := w.st.sharedNS[w.rng.IntN(stressSharedNS)]
		start := w.st.tick.Add(1)
		err := s.DeleteNamespace(ns)
		end := w.st.tick.Add(1)
		if err != nil {
			return fmt.Errorf("DeleteNamespace(%q): %w", ns, err)
		}
		for j := range stressSharedKeys {
			k := stressKey{ns, fmt.Sprintf("k%d", j)}
			w.writes[k] = append(w.writes[k], &sharedWrite{del: true, start: start, end: end, ns: true})
		}

	case n < 84: // List a shared namespace: a read of each key
		ns := w.st.sharedNS[w.rng.IntN(stressSharedNS)]
		start, c1 := w.st.tick.Add(1), w.now()
		m, err := s.List(ns)
		c2, end := w.now(), w.st.tick.Add(1)
		if err != nil {
			return fmt.Errorf("List(%q): %w", ns, err)
		}
		for key := range m {
			if w.st.hist[stressKey{ns, key}] == nil {
				return fmt.Errorf("List(%q) returned key %q, which was never written", ns, key)
			}
		}
		for j := range stressSharedKeys {
			k := stressKey{ns, fmt.Sprintf("k%d", j)}
			v, ok := m[k.key]
			w.reads = append(w.reads, sharedRead{k: k, op: "List", start: start, end: end, c1: c1, c2: c2, value: v, ok: ok})
		}

	case n < 90: // DeleteExpired, sometimes leaving before the sweep ends
		ctx := context.Background()
		leave := w.rng.IntN(3) == 0
		if leave {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(w.rng.IntN(300))*time.Microsecond)
			defer cancel()
		}
		deleted, err := s.DeleteExpired(ctx)
		if err != nil && !(leave && errors.Is(err, context.DeadlineExceeded)) {
			return fmt.Errorf("DeleteExpired: %w", err)
		}
		if deleted < 0 {
			return fmt.Errorf("DeleteExpired = %d; want >= 0", deleted)
		}

	case n < 95: // let time pass
		w.st.clock.Add(1 + w.rng.Int64N(int64(250*time.Millisecond)))

	default: // move the clock to the brink of an own key's expiry, and read it
		return w.brink()
	}
	return nil
}

// brink moves the clock to the exact expiry of an own key, or to 1 ns
// before it, sometimes sweeps, and reads the key: at its expiry a key is
// missing, and a nanosecond before it is not, nor swept.
func (w *stressWorker) brink() error {
	s := w.st.s
	now := w.now()
	var keys []stressKey
	for k, e := range w.model {
		if e.expLo == e.expHi && e.expLo > now+1 && e.expLo-now <= int64(time.Second) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.SortFunc(keys, func(a, b stressKey) int { return strings.Compare(a.ns+"/"+a.key, b.ns+"/"+b.key) })
	k := keys[w.rng.IntN(len(keys))]
	target := w.model[k].expLo - w.rng.Int64N(2)
	for c := w.now(); c < target && !w.st.clock.CompareAndSwap(c, target); c = w.now() {
	}
	if w.rng.IntN(2) == 0 {
		if _, err := s.DeleteExpired(context.Background()); err != nil {
			return fmt.Errorf("DeleteExpired: %w", err)
		}
	}
	c1 := w.now()
	v, ok, err := s.Lookup(k.ns, k.key)
	c2 := w.now()
	if err != nil {
		return fmt.Errorf("Lookup(%q, %q): %w", k.ns, k.key, err)
	}
	return w.checkOwn("Lookup", k, v, ok, c1, c2)
}

// readShared reads a shared key with Get or Lookup, and logs the read.
func (w *stressWorker) readShared() error {
	s := w.st.s
	r := sharedRead{k: w.sharedKey(), op: "Lookup"}
	get := w.rng.IntN(2) == 0
	var err error
	r.start, r.c1 = w.st.tick.Add(1), w.now()
	if get {
		r.op = "Get"
		r.value, err = s.Get(r.k.ns, r.k.key)
		r.ok = r.value != "" // shared values are never empty
	} else {
		r.value, r.ok, err = s.Lookup(r.k.ns, r.k.key)
	}
	r.c2, r.end = w.now(), w.st.tick.Add(1)
	if err != nil {
		return fmt.Errorf("%s(%q, %q): %w", r.op, r.k.ns, r.k.key, err)
	}
	w.reads = append(w.reads, r)
	return nil
}
