//go:build linux

package opstate_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
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

// damagedValue is the value of key i of the file TestDamagedFiles damages.
func damagedValue(i int) string {
	return fmt.Sprintf("value-%05d-%s", i, strings.Repeat("x", 80))
}

// TestDamagedFiles damages copies of a valid store file of about 120 pages,
// written and closed cleanly, and opens them. For damage that SQLite or a
// cheap look at the header can see, Open must fail with ErrCorrupt or
// ErrNotDatabase. For damage that only reading every page would find,
// Open may succeed; then List must fail with ErrCorrupt and each Get must
// return the key's value or ErrCorrupt, never another value or "missing".
// Either way the file must be byte for byte as it was, with no -wal or
// -shm file left beside it. Nothing is written to a damaged file once
// its damage has been seen: every write after the reads fails with
// ErrCorrupt, and a write that succeeded would change the file.
func TestDamagedFiles(t *testing.T) {
	const rows = 3000
	good := dbPath(t)
	s := mustOpen(t, good, opstate.Options{})
	mustSet(t, s, "ns", "key00000", damagedValue(0))
	db, err := sql.Open("sqlite", good)
	if err != nil {
		t.Fatal(err)
	}
	// One statement writes the rest: damagedValue in SQL.
	if _, err := db.Exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO operational_state
		SELECT 'ns', printf('key%05d', i), printf('value-%05d-', i) || replace(hex(zeroblob(40)), '0', 'x'),
			'2026-03-07T10:00:00.000Z', NULL
		FROM n`, rows-1); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	wantGet(t, s, "ns", fmt.Sprintf("key%05d", rows-1), damagedValue(rows-1), true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if sc := sidecars(good); len(sc) != 0 {
		t.Fatalf("a clean Close left %v beside the file", sc)
	}
	content, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	pageSize := int(binary.BigEndian.Uint16(content[16:]))
	if pageSize == 1 {
		pageSize = 65536
	}
	pages := int(binary.BigEndian.Uint32(content[28:]))
	if pages*pageSize != len(content) || pages < 20 {
		t.Fatalf("file is %d bytes, header says %d pages of %d; want them to agree and 20 pages or more", len(content), pages, pageSize)
	}

	rng := rand.New(rand.NewPCG(1, 2)) // the same garbage every run
	garbage := func(b []byte) {
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
	}
	tests := []struct {
		name   string
		damage func(b []byte) []byte
		// mayOpen says that no cheap check at Open can see the damage.
		mayOpen bool
	}{
		{"truncated to half", func(b []byte) []byte { return b[:len(b)/2] }, false},
		{"last page cut off", func(b []byte) []byte { return b[:len(b)-pageSize] }, false},
		{"garbage pages in the middle", func(b []byte) []byte {
			mid := pages / 2 * pageSize
			garbage(b[mid : mid+4*pageSize])
			return b
		}, true},
		{"header page count doubled", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[28:], uint32(2*pages))
			return b
		}, false},
		{"schema page garbage", func(b []byte) []byte {
			garbage(b[100:pageSize])
			return b
		}, false},
		// SQLite takes a header page count smaller than the file for
		// valid and ignores the rest of the file; Open compares page
		// count × page size with the file's size when no WAL is there.
		{"header page count halved", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[28:], uint32(pages/2))
			return b
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := dbPath(t)
			damaged := tt.damage(bytes.Clone(content))
			if err := os.WriteFile(path, damaged, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := opstate.Open(path, opstate.Options{})
			switch {
			case err == nil && !tt.mayOpen:
				s.Close()
				t.Errorf("Open succeeded; want ErrCorrupt or ErrNotDatabase")
			case err == nil:
				t.Logf("Open succeeded")
				checkDamagedReads(t, s, rows)
				// The reads have seen the damage: from now on no write
				// may reach the file, whichever page it would change.
				for i := 0; i < rows; i += rows / 6 {
					key := fmt.Sprintf("key%05d", i)
					if err := s.Set("ns", key, "new"); !errors.Is(err, opstate.ErrCorrupt) {
						t.Errorf("Set(ns, %s) after the damage was seen = %v; want ErrCorrupt", key, err)
					}
				}
				if err := s.Set("other", "k", "v"); !errors.Is(err, opstate.ErrCorrupt) {
					t.Errorf("Set(other, k) after the damage was seen = %v; want ErrCorrupt", err)
				}
				if _, err := s.DeleteExpired(context.Background()); !errors.Is(err, opstate.ErrCorrupt) {
					t.Errorf("DeleteExpired after the damage was seen = %v; want ErrCorrupt", err)
				}
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			case errors.Is(err, opstate.ErrCorrupt) || errors.Is(err, opstate.ErrNotDatabase):
				t.Logf("Open: %v", err)
				if !strings.HasPrefix(err.Error(), "opstate: ") {
					t.Errorf("Open = %q; want an error starting with \"opstate: \"", err)
				}
			default:
				t.Errorf("Open = %v; want ErrCorrupt or ErrNotDatabase", err)
			}
			if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, damaged) {
				t.Errorf("file after Open: %d bytes (%v), changed: %v; want the %d bytes it had", len(got), err, !bytes.Equal(got, damaged), len(damaged))
			}
			if sc := sidecars(path); len(sc) != 0 {
				t.Errorf("Open left %v beside the file; want nothing", sc)
			}

			// With VerifyOnOpen, every kind of damage is refused at Open,
			// the file still untouched.
			if s, err := opstate.Open(path, opstate.Options{VerifyOnOpen: true}); err == nil {
				s.Close()
				t.Errorf("Open with VerifyOnOpen succeeded; want ErrCorrupt or ErrNotDatabase")
			} else if !errors.Is(err, opstate.ErrCorrupt) && !errors.Is(err, opstate.ErrNotDatabase) {
				t.Errorf("Open with VerifyOnOpen = %v; want ErrCorrupt or ErrNotDatabase", err)
			}
			if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, damaged) {
				t.Errorf("file after Open with VerifyOnOpen changed")
			}
		})
	}
	t.Run("healthy file with VerifyOnOpen", func(t *testing.T) {
		path := dbPath(t)
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := opstate.Open(path, opstate.Options{VerifyOnOpen: true})
		if err != nil {
			t.Fatalf("Open of a healthy file with VerifyOnOpen = %v", err)
		}
		defer s.Close()
		if v, err := s.Get("ns", "key00000"); err != nil || v == "" {
			t.Errorf("Get = %q, %v; want the value", v, err)
		}
	})
}

// checkDamagedReads reads the rows of a damaged file: List must fail with
// ErrCorrupt, and each Get must return the key's value or ErrCorrupt.
func checkDamagedReads(t *testing.T, s *opstate.Store, rows int) {
	t.Helper()
	if m, err := s.List("ns"); !errors.Is(err, opstate.ErrCorrupt) {
		t.Errorf("List(ns) = %d keys, %v; want ErrCorrupt", len(m), err)
	}
	corrupt := 0
	for i := range rows {
		key := fmt.Sprintf("key%05d", i)
		v, ok, err := s.Lookup("ns", key)
		switch {
		case errors.Is(err, opstate.ErrCorrupt):
			corrupt++
		case err != nil || !ok || v != damagedValue(i):
			t.Errorf("Lookup(ns, %s) = %.20q, %v, %v; want %.20q or ErrCorrupt", key, v, ok, err, damagedValue(i))
		}
	}
	t.Logf("%d of %d Gets failed with ErrCorrupt, the others returned the right value", corrupt, rows)
	if corrupt == 0 {
		t.Errorf("every Get succeeded on a damaged file; want some to fail with ErrCorrupt")
	}
}
