package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/d8da9184/opstate"
	"github.com/tidwall/buntdb"
	bolt "go.etcd.io/bbolt"
)

// Every read benchmark below has the same shape, written out per
// implementation rather than shared through a function value, so that no
// implementation pays for an indirect call the others do not: operation j
// looks up keys[j % numKeys] and counts a result that is not what the
// workload says (a hit that misses, or the reverse) as bad. Keys are
// precomputed in the form each API takes; nothing is built in the loop.
// Parallel goroutines start at different places in the key order.

// failures collects what benchmarks find wrong; the runner stops at the
// first one.
type failures struct {
	mu  sync.Mutex
	err error
}

func (f *failures) add(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

// check records bad lookups: of keys that should hit if hit, else of keys
// that should miss.
func (f *failures) check(bad int, what string, hit bool) {
	if bad > 0 {
		want := "miss"
		if hit {
			want = "hit"
		}
		f.add(fmt.Errorf("%s: %d lookups that should %s did not", what, bad, want))
	}
}

func (f *failures) take() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.err
	f.err = nil
	return err
}

// start returns where a parallel goroutine begins in the key order.
func start(next *atomic.Int64) int {
	return int(next.Add(1)*2503) % numKeys
}

// getOpstate reads from the Store that store returns once the row is set
// up: opstate's on SQLite or on PostgreSQL, named what in failures.
func getOpstate(store func() *opstate.Store, what string, keys []string, hit, parallel bool, fail *failures) func(*testing.B) {
	return func(b *testing.B) {
		s := store()
		b.ReportAllocs()
		b.ResetTimer()
		if !parallel {
			bad, j := 0, 0
			for range b.N {
				if v, err := s.Get(namespace, keys[j]); err != nil || (len(v) == valueLen) != hit {
					bad++
				}
				if j++; j == numKeys {
					j = 0
				}
			}
			fail.check(bad, what+" Get", hit)
			return
		}
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			bad, j := 0, start(&next)
			for pb.Next() {
				if v, err := s.Get(namespace, keys[j]); err != nil || (len(v) == valueLen) != hit {
					bad++
				}
				if j++; j == numKeys {
					j = 0
				}
			}
			fail.check(bad, what+" Get", hit)
		})
	}
}

func getSQLite(st *stores, keys []string, hit, parallel bool, fail *failures) func(*testing.B) {
	return func(b *testing.B) {
		s := st.sqlite[normal]
		b.ReportAllocs()
		b.ResetTimer()
		if !parallel {
			bad, j := 0, 0
			for range b.N {
				if _, ok, err := s.Get(namespace, keys[j]); err != nil || ok != hit {
					bad++
				}
				if j++; j == numKeys {
					j = 0
				}
			}
			fail.check(bad, "sqlite-only Get", hit)
			return
		}
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			bad, j := 0, start(&next)
			for pb.Next() {
				if _, ok, err := s.Get(namespace, keys[j]); err != nil || ok != hit {
					bad++
				}
				if j++; j == numKeys {
					j = 0
				}
			}
			fail.check(bad, "sqlite-only Get", hit)
		})
	}
}

func getLRU(st *stores, keys []string, hit, parallel bool, fail *failures) func(*testing.B) {
	return func(b *testing.B) {
		c := st.lru
		b.ReportAllocs()
		b.ResetTimer()
		if !parallel {
			bad, j := 0, 0
			for range b.N {
				if _, ok := c.Get(keys[j]); ok != hit {
					bad++
				}
				if j++; j == numKeys {
					j = 0
				}
			}
			fail.check(bad, "golang-lru Get", hit)
			return
		}
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			bad, j := 0, start(&next)
			for pb.Next() {
				if _, ok := c.Get(keys[j]); ok != hit {
					bad++
				}
				if j++; j == numKeys {
					j = 0
				}
			}
			fail.check(bad, "golang-lru Get", hit)
		})
	}
}

func getOtter(st *stores, keys []string, hit, parallel bool, fail *failures) func(*testing.B) {
	return func(b *testing.B) {
		c := st.otter
		b.ReportAllocs()
		b.ResetTimer()
		if !parallel {
			bad, j := 0, 0
			for range b.N {
				if _, ok := c.GetIfPresent(keys[j]); ok != hit {
					bad++
				}
				if j++; j == numKeys {
					j = 0
				}
			}
			fail.check(bad, "otter GetIfPresent", hit)
			return
		}
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			bad, j := 0, start(&next)
			for pb.Next() {
				if _, ok := c.GetIfPresent(keys[j]); ok != hit {
					bad++
				}
				if j++; j == numKeys {
					j = 0
				}
			}
			fail.check(bad, "otter GetIfPresent", hit)
		})
	}
}

// buntGet reads key in its own read transaction, the way a caller that
// holds no transaction reads one key.
func buntGet(db *buntdb.DB, key string) (string, error) {
	var v string
	err := db.View(func(tx *buntdb.Tx) error {
		var err error
		v, err = tx.Get(key)
		return err
	})
	return v, err
}

func getBunt(st *stores, keys []string, hit, parallel bool, fail *failures) func(*testing.B) {
	return func(b *testing.B) {
		db := st.bunt
		b.ReportAllocs()
		b.ResetTimer()
		if !parallel {
			bad, j := 0, 0
			for range b.N {
				if v, _ := buntGet(db, keys[j]); (len(v) == valueLen) != hit {
					bad++
				}
				if j++; j == numKeys {
					j = 0
				}
			}
			fail.check(bad, "buntdb Get", hit)
			return
		}
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			bad, j := 0, start(&next)
			for pb.Next() {
				if v, _ := buntGet(db, keys[j]); (len(v) == valueLen) != hit {
					bad++
				}
				if j++; j == numKeys {
					j = 0
				}
			}
			fail.check(bad, "buntdb Get", hit)
		})
	}
}

// boltGet reads key in its own read transaction and returns the value's
// length: the value is not copied out of the transaction, which is bbolt's
// best case (a caller that keeps the value must copy it).
func boltGet(db *bolt.DB, key []byte) int {
	n := -1
	db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(boltBucket).Get(key); v != nil {
			n = len(v)
		}
		return nil
	})
	return n
}

func getBolt(st *stores, keys [][]byte, hit, parallel bool, fail *failures) func(*testing.B) {
	return func(b *testing.B) {
		db := st.bolt
		b.ReportAllocs()
		b.ResetTimer()
		if !parallel {
			bad, j := 0, 0
			for range b.N {
				if (boltGet(db, keys[j]) == valueLen) != hit {
					bad++
				}
				if j++; j == numKeys {
					j = 0
				}
			}
			fail.check(bad, "bbolt Get", hit)
			return
		}
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			bad, j := 0, start(&next)
			for pb.Next() {
				if (boltGet(db, keys[j]) == valueLen) != hit {
					bad++
				}
				if j++; j == numKeys {
					j = 0
				}
			}
			fail.check(bad, "bbolt Get", hit)
		})
	}
}

// getOtterNeg reads absent keys from a cache that holds them as
// absentMark: each lookup must find the mark.
func getOtterNeg(st *stores, keys []string, parallel bool, fail *failures) func(*testing.B) {
	return func(b *testing.B) {
		c := st.otterNeg
		b.ReportAllocs()
		b.ResetTimer()
		if !parallel {
			bad, j := 0, 0
			for range b.N {
				if v, ok := c.GetIfPresent(keys[j]); !ok || v != absentMark {
					bad++
				}
				if j++; j == numKeys {
					j = 0
				}
			}
			fail.check(bad, "otter GetIfPresent of an absent mark", true)
			return
		}
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			bad, j := 0, start(&next)
			for pb.Next() {
				if v, ok := c.GetIfPresent(keys[j]); !ok || v != absentMark {
					bad++
				}
				if j++; j == numKeys {
					j = 0
				}
			}
			fail.check(bad, "otter GetIfPresent of an absent mark", true)
		})
	}
}

// getLRUNeg is getOtterNeg for golang-lru.
func getLRUNeg(st *stores, keys []string, parallel bool, fail *failures) func(*testing.B) {
	return func(b *testing.B) {
		c := st.lruNeg
		b.ReportAllocs()
		b.ResetTimer()
		if !parallel {
			bad, j := 0, 0
			for range b.N {
				if v, ok := c.Get(keys[j]); !ok || v != absentMark {
					bad++
				}
				if j++; j == numKeys {
					j = 0
				}
			}
			fail.check(bad, "golang-lru Get of an absent mark", true)
			return
		}
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			bad, j := 0, start(&next)
			for pb.Next() {
				if v, ok := c.Get(keys[j]); !ok || v != absentMark {
					bad++
				}
				if j++; j == numKeys {
					j = 0
				}
			}
			fail.check(bad, "golang-lru Get of an absent mark", true)
		})
	}
}
