package check

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// appTables attacks "the application may keep tables of its own in the
// file and write them through db while the Store works": four goroutines
// set keys through the Store while two write the application's table in
// transactions of three rows and read the Store's table, all through one
// handle, for a second. Nothing may fail; afterwards, a new handle and
// Store find every key with its last value and every row of the
// application's.
func appTables(t *testing.T, d Driver) {
	path := filepath.Join(t.TempDir(), "state.db")
	db := handle(t, d, path)
	s := mustOpenDB(t, db, opstate.Options{})
	if _, err := db.Exec("CREATE TABLE app_events (id INTEGER PRIMARY KEY, note TEXT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex // guards errs, sets, rows
		errs []error
		sets = map[string]string{}
		rows int
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for g := range 4 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				k, v := fmt.Sprintf("k%d-%d", g, i%50), fmt.Sprintf("v%d", i)
				if err := s.Set("ns", k, v); err != nil {
					fail(fmt.Errorf("set %s: %w", k, err))
					return
				}
				mu.Lock()
				sets[k] = v
				mu.Unlock()
			}
		})
	}
	for g := range 2 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				tx, err := db.Begin()
				if err != nil {
					fail(err)
					return
				}
				for j := range 3 {
					if _, err := tx.Exec("INSERT INTO app_events (note) VALUES (?)", fmt.Sprintf("a%d-%d-%d", g, i, j)); err != nil {
						tx.Rollback()
						fail(fmt.Errorf("application insert: %w", err))
						return
					}
				}
				if err := tx.Commit(); err != nil {
					fail(fmt.Errorf("application commit: %w", err))
					return
				}
				mu.Lock()
				rows += 3
				mu.Unlock()
				var n int
				if err := db.QueryRow("SELECT count(*) FROM operational_state WHERE namespace = 'ns'").Scan(&n); err != nil {
					fail(fmt.Errorf("application read: %w", err))
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if len(sets) == 0 || rows == 0 {
		t.Fatalf("%d keys set, %d application rows written; want some of each", len(sets), rows)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	again := handle(t, d, path)
	s2 := mustOpenDB(t, again, opstate.Options{})
	for k, v := range sets {
		if got, ok, err := s2.Lookup("ns", k); err != nil || !ok || got != v {
			t.Errorf("after reopening, Lookup(%s) = %q, %v, %v; want %q", k, got, ok, err, v)
		}
	}
	var n int
	if err := again.QueryRow("SELECT count(*) FROM app_events").Scan(&n); err != nil || n != rows {
		t.Errorf("after reopening, the application counts %d rows, %v; want %d", n, err, rows)
	}
	var integrity string
	if err := again.QueryRow("PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Errorf("integrity_check = %q, %v", integrity, err)
	}
	t.Logf("%d keys set through the Store, %d rows written by the application", len(sets), rows)
}
