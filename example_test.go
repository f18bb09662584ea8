package opstate_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
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
