package opstate_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/d8da9184/opstate"
)

// exampleDir returns a fresh directory for an example's database.
func exampleDir() string {
	dir, err := os.MkdirTemp("", "opstate-example")
	if err != nil {
		log.Fatal(err)
	}
	return dir
}

func ExampleNewStore() {
	dir := exampleDir()
	defer os.RemoveAll(dir)

	s, err := opstate.NewStore(filepath.Join(dir, "state.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	if err := s.Set("flags", "dark_mode", "on"); err != nil {
		log.Fatal(err)
	}
	v, err := s.Get("flags", "dark_mode")
	if err != nil {
		log.Fatal(err)
	}
	missing, _ := s.Get("flags", "beta")
	fmt.Printf("dark_mode=%q beta=%q\n", v, missing)
	// Output: dark_mode="on" beta=""
}

// A test opens its store in memory: NewStore(":memory:") creates nothing on
// disk, each such store is a database of its own, so tests running side by
// side never see each other's keys, and every method works as on a file.
// The data is gone at Close; Backup writes it to a file, if a test wants
// to keep it.
func ExampleNewStore_inMemory() {
	s, err := opstate.NewStore(":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	other, err := opstate.NewStore(":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer other.Close()

	if err := s.Set("poller", "high_water_mark", "42"); err != nil {
		log.Fatal(err)
	}
	v, _ := s.Get("poller", "high_water_mark")
	w, _ := other.Get("poller", "high_water_mark")
	fmt.Printf("this store: %q, the other: %q\n", v, w)
	// Output: this store: "42", the other: ""
}

func ExampleOpen() {
	dir := exampleDir()
	defer os.RemoveAll(dir)

	s, err := opstate.Open(filepath.Join(dir, "state.db"), opstate.Options{
		CacheBytes:    8 << 20,                // 8 MiB of cached keys and values
		SweepInterval: 10 * time.Second,       // delete expired rows every 10s
		Durability:    opstate.DurabilityFull, // survive power loss too
		BusyTimeout:   100 * time.Millisecond, // fail fast behind other writers
		Clock:         time.Now,               // inject a fake clock in tests
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	if err := s.Set("poller", "high_water_mark", "1717171717"); err != nil {
		log.Fatal(err)
	}
	hwm, _ := s.Get("poller", "high_water_mark")
	fmt.Println(hwm)
	// Output: 1717171717
}

func ExampleStore_SetWithTTL() {
	dir := exampleDir()
	defer os.RemoveAll(dir)

	now := time.Date(2026, 3, 7, 10, 0, 0, 0, time.UTC)
	s, err := opstate.Open(filepath.Join(dir, "state.db"), opstate.Options{
		Clock: func() time.Time { return now },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	if err := s.SetWithTTL("sessions", "u42", "theme=dark", 30*time.Minute); err != nil {
		log.Fatal(err)
	}
	v, _ := s.Get("sessions", "u42")
	fmt.Printf("after 0m: %q\n", v)

	now = now.Add(30 * time.Minute)
	v, _ = s.Get("sessions", "u42")
	fmt.Printf("after 30m: %q\n", v)

	n, err := s.DeleteExpired(context.Background())
	fmt.Println("deleted:", n, err)
	// Output:
	// after 0m: "theme=dark"
	// after 30m: ""
	// deleted: 1 <nil>
}

func ExampleStore_List() {
	dir := exampleDir()
	defer os.RemoveAll(dir)

	s, err := opstate.NewStore(filepath.Join(dir, "state.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	for k, v := range map[string]string{"dark_mode": "on", "beta": "off", "new_ui": "on"} {
		if err := s.Set("flags", k, v); err != nil {
			log.Fatal(err)
		}
	}
	flags, err := s.List("flags")
	if err != nil {
		log.Fatal(err)
	}
	keys := make([]string, 0, len(flags))
	for k := range flags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("%s=%s\n", k, flags[k])
	}
	// Output:
	// beta=off
	// dark_mode=on
	// new_ui=on
}

func ExampleStore_Lookup() {
	dir := exampleDir()
	defer os.RemoveAll(dir)

	s, err := opstate.NewStore(filepath.Join(dir, "state.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	if err := s.Set("flags", "banner", ""); err != nil {
		log.Fatal(err)
	}
	v, ok, _ := s.Lookup("flags", "banner")
	fmt.Printf("%q %v\n", v, ok)
	v, ok, _ = s.Lookup("flags", "missing")
	fmt.Printf("%q %v\n", v, ok)
	// Output:
	// "" true
	// "" false
}

// A lease: one holder at a time, which must renew it before it runs out.
// SetIfAbsentWithTTL acquires it only if nobody holds it (or the holder
// let it expire), CompareAndSwapWithTTL renews it only for its holder, and
// CompareAndDelete releases it only for its holder. The holders are usually
// processes, each with a Store of its own on the file; SQLite decides every
// one of these calls, so exactly one of them holds the lease in the file at
// a time. Expiry is judged by the caller's Options.Clock: processes on one
// machine share its clock, but a holder whose clock runs behind another's
// by d still believes in its lease for d after the other took it
// (TestLeaseClockSkew). A holder should stop acting on the lease a margin
// before its TTL runs out, larger than any skew its clocks can have, and
// renew well within it. (On PostgreSQL the server's clock judges expiry.)
func ExampleStore_SetIfAbsentWithTTL() {
	dir := exampleDir()
	defer os.RemoveAll(dir)

	now := time.Date(2026, 3, 7, 10, 0, 0, 0, time.UTC)
	s, err := opstate.Open(filepath.Join(dir, "state.db"), opstate.Options{
		Clock: func() time.Time { return now },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	const ttl = 30 * time.Second

	acquire := func(holder string) bool {
		ok, err := s.SetIfAbsentWithTTL("leases", "poller", holder, ttl)
		if err != nil {
			log.Fatal(err)
		}
		return ok
	}
	renew := func(holder string) bool {
		ok, err := s.CompareAndSwapWithTTL("leases", "poller", holder, holder, ttl)
		if err != nil {
			log.Fatal(err)
		}
		return ok
	}
	release := func(holder string) bool {
		ok, err := s.CompareAndDelete("leases", "poller", holder)
		if err != nil {
			log.Fatal(err)
		}
		return ok
	}

	fmt.Println("a acquires:", acquire("instance-a"))
	fmt.Println("b acquires:", acquire("instance-b"))
	now = now.Add(20 * time.Second)
	fmt.Println("a renews:", renew("instance-a"), "b renews:", renew("instance-b"))
	now = now.Add(20 * time.Second) // 40s after acquiring, 20s after renewing
	fmt.Println("b acquires:", acquire("instance-b"))
	fmt.Println("b releases:", release("instance-b"), "a releases:", release("instance-a"))
	fmt.Println("b acquires:", acquire("instance-b"))
	now = now.Add(ttl) // b stops renewing: the lease expires
	fmt.Println("a acquires:", acquire("instance-a"))
	// Output:
	// a acquires: true
	// b acquires: false
	// a renews: true b renews: false
	// b acquires: false
	// b releases: false a releases: true
	// b acquires: true
	// a acquires: true
}

// A high-water mark that only moves forward, however many pollers report
// progress at once: advance reads the mark, and stores its own with
// CompareAndSwap only if the mark is lower and still the one it read;
// otherwise it reads again. A refused CompareAndSwap refreshes the Store's
// cached entry from SQLite, so the next read sees the other poller's
// mark, even one written by another process a moment ago.
func ExampleStore_CompareAndSwap() {
	dir := exampleDir()
	defer os.RemoveAll(dir)

	s, err := opstate.NewStore(filepath.Join(dir, "state.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	// advance raises the mark at ns/key to mark, never lowers it, and
	// returns the mark stored afterwards.
	advance := func(s *opstate.Store, ns, key string, mark int) (int, error) {
		for {
			v, ok, err := s.Lookup(ns, key)
			if err != nil {
				return 0, err
			}
			var stored bool
			switch cur, convErr := strconv.Atoi(v); {
			case !ok:
				stored, err = s.SetIfAbsent(ns, key, strconv.Itoa(mark))
			case convErr != nil:
				return 0, fmt.Errorf("%s/%s holds %q, not a number", ns, key, v)
			case cur >= mark:
				return cur, nil
			default:
				stored, err = s.CompareAndSwap(ns, key, v, strconv.Itoa(mark))
			}
			if err != nil {
				return 0, err
			}
			if stored {
				return mark, nil
			}
			// Another poller moved the mark first: read it again.
		}
	}

	for _, mark := range []int{100, 90, 120} {
		hwm, err := advance(s, "poller", "high_water_mark", mark)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("advance to %d: the mark is %d\n", mark, hwm)
	}

	// Eight pollers report marks 121 to 128 at once, in no order.
	var wg sync.WaitGroup
	for mark := 121; mark <= 128; mark++ {
		wg.Go(func() {
			if _, err := advance(s, "poller", "high_water_mark", mark); err != nil {
				log.Fatal(err)
			}
		})
	}
	wg.Wait()
	hwm, _ := s.Get("poller", "high_water_mark")
	fmt.Println("after the pollers:", hwm)
	// Output:
	// advance to 100: the mark is 100
	// advance to 90: the mark is 100
	// advance to 120: the mark is 120
	// after the pollers: 128
}

func ExampleStore_Stats() {
	dir := exampleDir()
	defer os.RemoveAll(dir)

	s, err := opstate.NewStore(filepath.Join(dir, "state.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	if err := s.Set("flags", "dark_mode", "on"); err != nil {
		log.Fatal(err)
	}
	for range 3 {
		s.Get("flags", "dark_mode") // from memory
	}
	s.Get("flags", "beta") // reads SQLite, and caches that beta is absent
	s.Get("flags", "beta") // from memory
	st := s.Stats()
	fmt.Printf("hits=%d misses=%d writes=%d cached=%d\n", st.Hits, st.Misses, st.Writes, st.Entries)
	// Output: hits=4 misses=1 writes=1 cached=2
}
