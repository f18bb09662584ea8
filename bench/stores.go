package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/d8da9184/opstate"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/maypok86/otter/v2"
	"github.com/tidwall/buntdb"
	bolt "go.etcd.io/bbolt"
)

// durability is the synchronous setting a write benchmark runs under.
type durability int

const (
	normal durability = iota
	full
)

func (d durability) String() string {
	if d == full {
		return "FULL"
	}
	return "NORMAL"
}

// stores opens each implementation on first use, fills it with the
// workload and reads every key once, so that a benchmark starts warm. All
// files live in dir.
type stores struct {
	dir string
	w   *workload

	closers []func() error // in opening order

	opstate [2]*opstate.Store // by durability
	// history's are Stores of synchronous NORMAL on files where the
	// workload's namespace keeps no history but another does
	// (historyOther), and where it keeps history (historyOwn).
	history [2]*opstate.Store
	sqlite  [2]*sqliteOnly // by durability
	lru     *lru.Cache[string, string]
	otter   *otter.Cache[string, string]
	// otterNeg and lruNeg also hold an entry for every absent key, as a
	// cache in front of a store must to answer "absent" without asking
	// the store: the value absentMark.
	otterNeg *otter.Cache[string, string]
	lruNeg   *lru.Cache[string, string]
	bunt     *buntdb.DB
	bolt     *bolt.DB

	// The PostgreSQL rows' (pg.go, staleness.go); pg is nil when there is
	// no server.
	pg                        *pgServer
	opstatePG                 *opstate.Store
	pgxOnly                   *pgxOnly
	pgxTrigger                *pgxOnly // pgx-only with opstate's trigger
	staleOpstate, staleListen *staleness
}

var boltBucket = []byte(namespace)

func (s *stores) Close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	s.closers = nil
	return errors.Join(errs...)
}

func (s *stores) openOpstate(d durability) error {
	if s.opstate[d] != nil {
		return nil
	}
	opts := opstate.Options{SweepInterval: -1}
	if d == full {
		opts.Durability = opstate.DurabilityFull
	}
	st, err := opstate.Open(filepath.Join(s.dir, "opstate-"+d.String()+".db"), opts)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, st.Close)
	s.opstate[d] = st
	return warmOpstate(st, s.w, "opstate")
}

// Which namespace keeps history in a file of stores.history.
const (
	historyOther = iota // another namespace: the workload's writes record nothing
	historyOwn          // the workload's namespace
)

// historyKeep is the keep of the namespace that keeps history.
const historyKeep = 1000

func (s *stores) openHistory(which int) error {
	if s.history[which] != nil {
		return nil
	}
	st, err := opstate.Open(filepath.Join(s.dir, fmt.Sprintf("opstate-history-%d.db", which)), opstate.Options{SweepInterval: -1})
	if err != nil {
		return err
	}
	s.closers = append(s.closers, st.Close)
	s.history[which] = st
	ns := "audited"
	if which == historyOwn {
		ns = namespace
	}
	if err := st.SetHistory(ns, historyKeep); err != nil {
		return err
	}
	return warmOpstate(st, s.w, "opstate")
}

// warmOpstate fills an opstate Store with w, reads every key once and
// looks up every absent one, so that its cache holds them all; name is the
// row's implementation, for errors.
func warmOpstate(st *opstate.Store, w *workload, name string) error {
	// One writer in key-number order, as every store is filled.
	for i := range numKeys {
		if err := st.Set(namespace, w.keys[w.pos[i]], w.values[i]); err != nil {
			return err
		}
	}
	for j, k := range w.keys {
		if v, err := st.Get(namespace, k); err != nil || v != w.values[w.order[j]] {
			return fmt.Errorf("%s warm-up: Get(%q) = %q, %v", name, k, v, err)
		}
	}
	// Lookups of absent keys cache them as absent, in key-number order.
	for i := range numKeys {
		k := w.missing[w.pos[i]]
		if v, ok, err := st.Lookup(namespace, k); err != nil || ok {
			return fmt.Errorf("%s warm-up: Lookup(%q) = %q, %v, %v; want missing", name, k, v, ok, err)
		}
	}
	if n := st.CacheStats().Entries; n != 2*numKeys {
		return fmt.Errorf("%s warm-up: cache holds %d entries, want %d", name, n, 2*numKeys)
	}
	return nil
}

func (s *stores) openSQLite(d durability) error {
	if s.sqlite[d] != nil {
		return nil
	}
	db, err := openSQLiteOnly(filepath.Join(s.dir, "sqlite-only-"+d.String()+".db"), d)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, db.Close)
	s.sqlite[d] = db
	if err := db.fill(s.w); err != nil {
		return fmt.Errorf("sqlite-only fill: %w", err)
	}
	for j, k := range s.w.keys {
		if v, ok, err := db.Get(namespace, k); err != nil || !ok || v != s.w.values[s.w.order[j]] {
			return fmt.Errorf("sqlite-only warm-up: Get(%q) = %q, %v, %v", k, v, ok, err)
		}
	}
	for _, k := range s.w.missing {
		if v, ok, err := db.Get(namespace, k); err != nil || ok {
			return fmt.Errorf("sqlite-only warm-up: Get(%q) = %q, %v, %v; want missing", k, v, ok, err)
		}
	}
	return nil
}

func (s *stores) openLRU() error {
	if s.lru != nil {
		return nil
	}
	c, err := lru.New[string, string](2 * numKeys)
	if err != nil {
		return err
	}
	s.lru = c
	for i, v := range s.w.values {
		c.Add(s.w.composite[s.w.pos[i]], v)
	}
	for i, k := range s.w.composite {
		if v, ok := c.Get(k); !ok || v != s.w.values[s.w.order[i]] {
			return fmt.Errorf("golang-lru warm-up: Get(%q) = %q, %v", k, v, ok)
		}
	}
	for _, k := range s.w.compMissing {
		if _, ok := c.Get(k); ok {
			return fmt.Errorf("golang-lru warm-up: Get(%q) found a missing key", k)
		}
	}
	return nil
}

func (s *stores) openOtter() error {
	if s.otter != nil {
		return nil
	}
	c := otter.Must(&otter.Options[string, string]{MaximumSize: 2 * numKeys})
	s.otter = c
	for i, v := range s.w.values {
		c.Set(s.w.composite[s.w.pos[i]], v)
	}
	for i, k := range s.w.composite {
		if v, ok := c.GetIfPresent(k); !ok || v != s.w.values[s.w.order[i]] {
			return fmt.Errorf("otter warm-up: GetIfPresent(%q) = %q, %v", k, v, ok)
		}
	}
	for _, k := range s.w.compMissing {
		if _, ok := c.GetIfPresent(k); ok {
			return fmt.Errorf("otter warm-up: GetIfPresent(%q) found a missing key", k)
		}
	}
	return nil
}

// openBunt opens buntdb on a file with its default configuration
// (SyncPolicy EverySecond).
func (s *stores) openBunt() error {
	if s.bunt != nil {
		return nil
	}
	db, err := buntdb.Open(filepath.Join(s.dir, "buntdb.db"))
	if err != nil {
		return err
	}
	s.closers = append(s.closers, db.Close)
	s.bunt = db
	err = db.Update(func(tx *buntdb.Tx) error {
		for i, v := range s.w.values {
			if _, _, err := tx.Set(s.w.composite[s.w.pos[i]], v, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return db.View(func(tx *buntdb.Tx) error {
		for i, k := range s.w.composite {
			if v, err := tx.Get(k); err != nil || v != s.w.values[s.w.order[i]] {
				return fmt.Errorf("buntdb warm-up: Get(%q) = %q, %v", k, v, err)
			}
		}
		return nil
	})
}

// openBolt opens bbolt with its default options.
func (s *stores) openBolt() error {
	if s.bolt != nil {
		return nil
	}
	db, err := bolt.Open(filepath.Join(s.dir, "bbolt.db"), 0o600, nil)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, db.Close)
	s.bolt = db
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(boltBucket)
		if err != nil {
			return err
		}
		for i, v := range s.w.values {
			if err := b.Put(s.w.boltKeys[s.w.pos[i]], []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(boltBucket)
		for i, k := range s.w.boltKeys {
			if v := b.Get(k); string(v) != s.w.values[s.w.order[i]] {
				return fmt.Errorf("bbolt warm-up: Get(%q) = %q", k, v)
			}
		}
		return nil
	})
}

// absentMark is the value otterNeg and lruNeg hold for an absent key.
const absentMark = "\x00absent"

func (s *stores) openOtterNeg() error {
	if s.otterNeg != nil {
		return nil
	}
	c := otter.Must(&otter.Options[string, string]{MaximumSize: 2 * numKeys})
	s.otterNeg = c
	for i, v := range s.w.values {
		c.Set(s.w.composite[s.w.pos[i]], v)
	}
	for i := range numKeys {
		c.Set(s.w.compMissing[s.w.pos[i]], absentMark)
	}
	for _, k := range s.w.compMissing {
		if v, ok := c.GetIfPresent(k); !ok || v != absentMark {
			return fmt.Errorf("otter warm-up: GetIfPresent(%q) = %q, %v; want the absent mark", k, v, ok)
		}
	}
	return nil
}

func (s *stores) openLRUNeg() error {
	if s.lruNeg != nil {
		return nil
	}
	c, err := lru.New[string, string](2 * numKeys)
	if err != nil {
		return err
	}
	s.lruNeg = c
	for i, v := range s.w.values {
		c.Add(s.w.composite[s.w.pos[i]], v)
	}
	for i := range numKeys {
		c.Add(s.w.compMissing[s.w.pos[i]], absentMark)
	}
	for _, k := range s.w.compMissing {
		if v, ok := c.Get(k); !ok || v != absentMark {
			return fmt.Errorf("golang-lru warm-up: Get(%q) = %q, %v; want the absent mark", k, v, ok)
		}
	}
	return nil
}
