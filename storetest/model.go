package storetest

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// Bounds of testModel: each worker stops after modelOps operations or
// modelTime, whichever comes first.
const (
	modelWorkers    = 4
	modelNamespaces = 2 // per worker
	modelKeys       = 5 // per namespace
	modelOps        = 2000
	modelTime       = 1500 * time.Millisecond
)

// testModel runs workers that make random writes and reads through one
// Store at once, each over namespaces of its own, so that a plain map per
// worker is an exact model of what its keys hold. Invariants: every
// conditional write answers as the model says; every Get returns the
// model's value, during the run (read-your-writes while others write) and
// after it, through this Store and through a new one; List of every
// namespace equals the model.
func testModel(t *testing.T, c Config) {
	o := c.New(t)
	s := open(t, o, realTime())
	models := make([]map[string]map[string]string, modelWorkers) // worker → namespace → key → value
	deadline := time.Now().Add(modelTime)
	var wg sync.WaitGroup
	for w := range modelWorkers {
		model := map[string]map[string]string{}
		for n := range modelNamespaces {
			model[fmt.Sprintf("m%d-%d", w, n)] = map[string]string{}
		}
		models[w] = model
		wg.Go(func() {
			if err := modelWorker(s, w, model, deadline); err != nil {
				t.Errorf("worker %d: %v", w, err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, r := range []*opstate.Store{s, open(t, o, realTime())} {
		for _, model := range models {
			for ns, m := range model {
				wantList(t, r, ns, m)
				for k := range modelKeys {
					key := fmt.Sprint("k", k)
					v, ok := m[key]
					wantLookup(t, r, ns, key, v, ok)
				}
			}
		}
	}
}

// modelWorker runs random operations on the namespaces of model through
// s, keeping model up to date, and returns the first disagreement.
func modelWorker(s *opstate.Store, w int, model map[string]map[string]string, deadline time.Time) error {
	rng := rand.New(rand.NewPCG(uint64(w), 17))
	for i := 0; i < modelOps && time.Now().Before(deadline); i++ {
		ns := fmt.Sprintf("m%d-%d", w, rng.IntN(modelNamespaces))
		key := fmt.Sprint("k", rng.IntN(modelKeys))
		m := model[ns]
		held, live := m[key]
		value := fmt.Sprintf("w%d-%d", w, i)
		if rng.IntN(8) == 0 {
			value = "" // the empty value is a value
		}
		// old is what a compare compares with: what the key holds, or
		// another value.
		old := held
		if rng.IntN(3) == 0 {
			old = fmt.Sprint("not-", held)
		}
		var op string
		var err error
		got, want := false, false
		switch r := rng.IntN(100); {
		case r < 25:
			op, err = "Set", s.Set(ns, key, value)
			m[key] = value
		case r < 35:
			op, err = "SetWithTTL", s.SetWithTTL(ns, key, value, time.Hour)
			m[key] = value
		case r < 50:
			op, err = "Delete", s.Delete(ns, key)
			delete(m, key)
		case r < 62:
			op, want = "SetIfAbsent", !live
			got, err = s.SetIfAbsent(ns, key, value)
			if want {
				m[key] = value
			}
		case r < 77:
			op, want = "CompareAndSwap", live && old == held
			got, err = s.CompareAndSwap(ns, key, old, value)
			if want {
				m[key] = value
			}
		case r < 87:
			op, want = "CompareAndDelete", live && old == held
			got, err = s.CompareAndDelete(ns, key, old)
			if want {
				delete(m, key)
			}
		case r < 90:
			op, err = "DeleteNamespace", s.DeleteNamespace(ns)
			clear(m)
		default:
			op = "Get"
		}
		if err != nil {
			return fmt.Errorf("op %d: %s(%s, %s): %v", i, op, ns, key, err)
		}
		if got != want {
			return fmt.Errorf("op %d: %s(%s, %s) on %q (live %v) = %v; want %v", i, op, ns, key, held, live, got, want)
		}
		v, ok, err := s.Lookup(ns, key)
		if wantV, wantOK := m[key]; v != wantV || ok != wantOK || err != nil {
			return fmt.Errorf("op %d: after %s(%s, %s): Lookup = %q, %v, %v; want %q, %v, nil", i, op, ns, key, v, ok, err, wantV, wantOK)
		}
		if op == "DeleteNamespace" || rng.IntN(20) == 0 {
			if l, err := s.List(ns); err != nil || !maps.Equal(l, m) {
				return fmt.Errorf("op %d: after %s(%s, %s): List = %q, %v; want %q", i, op, ns, key, l, err, m)
			}
		}
	}
	return nil
}
