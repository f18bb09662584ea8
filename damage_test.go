//go:build linux

package opstate_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// TestDamageStopsGroupedWrites attacks "from then on every write fails with
// ErrCorrupt" where writes share transactions. On a file with four pages
// of garbage in the middle, A (a key on a sound page) commits while B (a
// key on a damaged page) and C (a key on a sound page) queue behind it,
// so that they share the next transaction; SQLite fails it with
// SQLITE_CORRUPT. From that moment the Store has seen the damage: C must
// fail with ErrCorrupt and not be written by a retry of the batch write by
// write, and D, queued while that failure is being handled, must not be
// written by the next transaction either. Only A, committed before the
// damage was seen, may have changed the file.
func TestDamageStopsGroupedWrites(t *testing.T) {
	const rows = 3000
	path := dbPath(t)
	s := mustOpen(t, path, opstate.Options{})
	for i := range rows {
		mustSet(t, s, "ns", fmt.Sprintf("key%05d", i), damagedValue(i))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	content, err := os.ReadFile(path) // no connection has the file open
	if err != nil {
		t.Fatal(err)
	}
	const pageSize = 4096
	mid := len(content) / pageSize / 2 * pageSize
	for i := range 4 * pageSize {
		content[mid+i] = byte(i*7 + 3)
	}
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}

	// Which keys lie on damaged pages, asked through a connection of its
	// own, so that the Store has seen nothing when the writes begin.
	raw := sqlDB(t, path)
	var damaged, sound []string
	for i := range rows {
		k := fmt.Sprintf("key%05d", i)
		var v string
		if err := raw.QueryRow(`SELECT value FROM operational_state WHERE namespace = 'ns' AND key = ?`, k).Scan(&v); err != nil {
			damaged = append(damaged, k)
		} else {
			sound = append(sound, k)
		}
	}
	if len(damaged) == 0 || len(sound) < 3 {
		t.Fatalf("%d keys on damaged pages, %d on sound ones; want some of each", len(damaged), len(sound))
	}
	// New values as long as the old, so that no write moves cells between
	// pages: each touches only its own leaf.
	newValue := strings.Repeat("n", len(damagedValue(0)))
	a, b, c, d := sound[0], damaged[len(damaged)/2], sound[len(sound)-1], sound[len(sound)/2]

	s = mustOpen(t, path, opstate.Options{CacheBytes: -1, SyncInterval: -1})
	held := make(chan struct{})
	release := make(chan struct{})
	abort := make(chan struct{}) // closed when the test ends, so that no leader waits for ever
	t.Cleanup(func() { close(abort) })
	commits := 0 // only the leader runs the hook, one at a time
	s.SetAfterApply(func() {
		commits++
		if commits <= 2 {
			select {
			case held <- struct{}{}:
			case <-abort:
				return
			}
			select {
			case <-release:
			case <-abort:
			}
		}
	})
	set := func(key string) chan error {
		done := make(chan error, 1)
		go func() { done <- s.Set("ns", key, newValue) }()
		return done
	}
	// queued waits until n writes are queued, or until the write behind
	// done has returned without queuing (refused at once).
	queued := func(n int, done chan error) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); s.Queued() < n && len(done) == 0; {
			if time.Now().After(deadline) {
				t.Fatalf("%d writes queued after 5s; want %d", s.Queued(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	errA := set(a)
	<-held // A committed; its leader waits here
	errB, errC := set(b), set(c)
	queued(2, nil)
	release <- struct{}{}
	<-held // B and C's transaction has ended
	errD := set(d)
	queued(1, errD)
	release <- struct{}{}

	if err := <-errA; err != nil {
		t.Errorf("Set(%s), committed before the damage was seen = %v; want nil", a, err)
	}
	for _, w := range []struct {
		key  string
		errc chan error
	}{{b, errB}, {c, errC}, {d, errD}} {
		if err := <-w.errc; !errors.Is(err, opstate.ErrCorrupt) {
			t.Errorf("Set(%s) = %v; want ErrCorrupt", w.key, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{c, d} {
		var v string
		if err := raw.QueryRow(`SELECT value FROM operational_state WHERE namespace = 'ns' AND key = ?`, k).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v == newValue {
			t.Errorf("%s holds the value of a write made after SQLite reported the damage; want the old one", k)
		}
	}
}

// TestDamageKeepsItsCause checks that the writes a Store refuses after
// damage still match the sentinel of the damage's cause: another SQLite
// library in the process, whose open can corrupt what the Store reads
// before any check saw it (the first failed write then names both).
func TestDamageKeepsItsCause(t *testing.T) {
	s := mustOpen(t, dbPath(t), opstate.Options{})
	mustSet(t, s, "ns", "before", "v")
	s.NoteDamage(fmt.Errorf("opstate: another library: %w; the write failed with: %w", opstate.ErrForeignSQLite, opstate.ErrCorrupt))
	err := s.Set("ns", "after", "v")
	if !errors.Is(err, opstate.ErrCorrupt) || !errors.Is(err, opstate.ErrForeignSQLite) {
		t.Fatalf("Set after damage caused by another library = %v; want ErrCorrupt and ErrForeignSQLite", err)
	}
}
