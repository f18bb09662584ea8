package opstate_test

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// TestOptionEdges opens Stores with every Options field at the edges of
// its type: zero, negative, the smallest positive unit, the largest value.
// Each is either refused with ErrInvalidOption, creating nothing, or
// honoured: the Store then reads, writes and closes as documented.
func TestOptionEdges(t *testing.T) {
	const (
		minDur = time.Duration(math.MinInt64)
		maxDur = time.Duration(math.MaxInt64)
	)
	tests := []struct {
		name    string
		opts    opstate.Options
		refused bool
	}{
		{"CacheBytes 1", opstate.Options{CacheBytes: 1}, false},
		{"CacheBytes max", opstate.Options{CacheBytes: math.MaxInt64}, false},
		{"CacheBytes min", opstate.Options{CacheBytes: math.MinInt64}, false},
		{"SweepInterval 1ns", opstate.Options{SweepInterval: 1}, false},
		{"SweepInterval max", opstate.Options{SweepInterval: maxDur}, false},
		{"SweepInterval min", opstate.Options{SweepInterval: minDur}, false},
		{"SyncInterval 1ns", opstate.Options{SyncInterval: 1}, false},
		{"SyncInterval max", opstate.Options{SyncInterval: maxDur}, false},
		{"SyncInterval min", opstate.Options{SyncInterval: minDur}, false},
		{"BusyTimeout 1ns", opstate.Options{BusyTimeout: 1}, false},
		{"BusyTimeout MaxBusyTimeout", opstate.Options{BusyTimeout: opstate.MaxBusyTimeout}, false},
		{"BusyTimeout MaxBusyTimeout+1ns", opstate.Options{BusyTimeout: opstate.MaxBusyTimeout + 1}, true},
		{"BusyTimeout 597h", opstate.Options{BusyTimeout: 597 * time.Hour}, true},
		{"BusyTimeout max", opstate.Options{BusyTimeout: maxDur}, true},
		{"BusyTimeout -1ns", opstate.Options{BusyTimeout: -1}, true},
		{"BusyTimeout min", opstate.Options{BusyTimeout: minDur}, true},
		{"Durability -1", opstate.Options{Durability: -1}, true},
		{"Durability 2", opstate.Options{Durability: 2}, true},
		{"Durability max", opstate.Options{Durability: math.MaxInt}, true},
		{"Durability Full", opstate.Options{Durability: opstate.DurabilityFull}, false},
		{"VerifyOnOpen", opstate.Options{VerifyOnOpen: true}, false},
		{"Fdatasync -1", opstate.Options{Fdatasync: -1}, true},
		{"Fdatasync 2", opstate.Options{Fdatasync: 2}, true},
		{"Fdatasync max", opstate.Options{Fdatasync: math.MaxInt}, true},
		{"Fdatasync Leave", opstate.Options{Durability: opstate.DurabilityFull, Fdatasync: opstate.FdatasyncLeave}, false},
		{"Fdatasync On", opstate.Options{Fdatasync: opstate.FdatasyncOn}, !fdatasyncOffered()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := dbPath(t)
			s, err := opstate.Open(path, tt.opts)
			if tt.refused {
				if err == nil {
					s.Close()
				}
				if !errors.Is(err, opstate.ErrInvalidOption) {
					t.Errorf("Open(%+v) = %v; want ErrInvalidOption", tt.opts, err)
				}
				if entries, err := os.ReadDir(filepath.Dir(path)); err != nil || len(entries) != 0 {
					t.Errorf("refused Open left %v (%v) in the directory; want nothing", entries, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%+v) = %v; want it honoured", tt.opts, err)
			}
			mustSet(t, s, "ns", "k", "v")
			if err := s.SetWithTTL("ns", "gone", "v", time.Millisecond); err != nil {
				t.Fatal(err)
			}
			wantGet(t, s, "ns", "k", "v", true)
			time.Sleep(5 * time.Millisecond)
			wantGet(t, s, "ns", "gone", "", false)
			if m, err := s.List("ns"); err != nil || len(m) != 1 {
				t.Errorf("List = %v, %v; want one key", m, err)
			}
			if tt.opts.CacheBytes > 0 && tt.opts.CacheBytes < 1000 {
				if st := s.CacheStats(); st.Bytes > tt.opts.CacheBytes {
					t.Errorf("CacheStats().Bytes = %d; want at most CacheBytes %d", st.Bytes, tt.opts.CacheBytes)
				}
			}
			if err := s.Close(); err != nil {
				t.Errorf("Close = %v", err)
			}
		})
	}
}

// TestTinyIntervals checks that the smallest positive intervals are
// honoured, not taken for "off": with SweepInterval 1ns the sweeper deletes
// an expired row nobody asked to delete, and with SyncInterval 1ns a write
// by another connection is served at once.
func TestTinyIntervals(t *testing.T) {
	clk := newClock()
	path := dbPath(t)
	s := mustOpen(t, path, opstate.Options{SweepInterval: 1, SyncInterval: 1, Clock: clk.Now})
	if err := s.SetWithTTL("ns", "gone", "v", time.Second); err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "ns", "k", "old")
	warm(t, s, "ns", "k")
	clk.Advance(time.Hour)
	if _, err := sqlDB(t, path).Exec(`UPDATE operational_state SET value = 'new' WHERE key = 'k'`); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		var n int
		if err := sqlDB(t, path).QueryRow(`SELECT count(*) FROM operational_state WHERE key = 'gone'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		v, _ := s.Get("ns", "k")
		if n == 0 && v == "new" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 2s: expired row still in the file: %v; Get(k) = %q, want \"new\"", n == 1, v)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBusyTimeoutRoundsUp holds the write lock on another connection and
// times a write under a BusyTimeout of one nanosecond: SQLite counts whole
// milliseconds, and a timeout truncated to 0 would fail at once instead of
// waiting as asked.
func TestBusyTimeoutRoundsUp(t *testing.T) {
	path := dbPath(t)
	s := mustOpen(t, path, opstate.Options{BusyTimeout: 1, SyncInterval: -1})
	mustSet(t, s, "ns", "k", "old")
	holdWriteLock(t, path)
	start := time.Now()
	err := s.Set("ns", "k", "new")
	took := time.Since(start)
	if !errors.Is(err, opstate.ErrBusy) {
		t.Fatalf("Set under another connection's lock = %v; want ErrBusy", err)
	}
	if took < time.Millisecond {
		t.Errorf("Set with BusyTimeout 1ns gave up after %v; want it to wait at least 1ms", took)
	}
	wantGet(t, s, "ns", "k", "old", true)
}

// panicHandler is a slog.Handler that panics on every record it handles.
type panicHandler struct{ calls *atomic.Int64 }

func (h panicHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h panicHandler) Handle(context.Context, slog.Record) error {
	h.calls.Add(1)
	panic("logger broken")
}
func (h panicHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h panicHandler) WithGroup(string) slog.Handler      { return h }

// TestPanickingCallbacks gives the Store a Logger and a Clock that panic.
// The background goroutines must survive a Logger that panics (the process
// would otherwise die, with nothing the caller could catch), and a write
// whose Clock panics must fail with an error that names the Clock, not the
// driver, and change nothing.
func TestPanickingCallbacks(t *testing.T) {
	t.Run("Logger", func(t *testing.T) {
		calls := new(atomic.Int64)
		clk := newClock()
		s := mustOpen(t, dbPath(t), opstate.Options{
			SweepInterval: time.Millisecond, Clock: clk.Now, Logger: slog.New(panicHandler{calls}),
		})
		for i := range 3 {
			// Each sweep that deletes something logs its count at Debug.
			if err := s.SetWithTTL("ns", "k", "v", time.Millisecond); err != nil {
				t.Fatal(err)
			}
			clk.Advance(time.Second)
			for deadline := time.Now().Add(2 * time.Second); calls.Load() <= int64(i); {
				if time.Now().After(deadline) {
					t.Fatalf("the background sweeper logged %d times in 2s; want %d", calls.Load(), i+1)
				}
				time.Sleep(time.Millisecond)
			}
		}
		mustSet(t, s, "ns", "after", "v")
		wantGet(t, s, "ns", "after", "v", true)
	})
	t.Run("Clock", func(t *testing.T) {
		now, broken := breakableClock()
		path := dbPath(t)
		s := mustOpen(t, path, opstate.Options{Clock: now})
		mustSet(t, s, "ns", "k", "old")
		broken.Store(true)
		err := s.Set("ns", "k", "new")
		if err == nil || !strings.Contains(err.Error(), "Clock panicked: clock broken") || strings.Contains(err.Error(), "driver") {
			t.Errorf("Set with a panicking Clock = %v; want an error naming Options.Clock", err)
		}
		broken.Store(false)
		wantGet(t, s, "ns", "k", "old", true)
		fresh := mustOpen(t, path, opstate.Options{CacheBytes: -1})
		wantGet(t, fresh, "ns", "k", "old", true)
	})
}

// TestDeleteExpiredClosedFirst checks that a closed Store says so first,
// before the caller's context does.
func TestDeleteExpiredClosedFirst(t *testing.T) {
	s, err := opstate.Open(dbPath(t), opstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.DeleteExpired(ctx); !errors.Is(err, opstate.ErrClosed) {
		t.Errorf("DeleteExpired(cancelled ctx) after Close = %v; want ErrClosed", err)
	}
}

// TestPanickingClockInCalls attacks the promise of docs/guarantees.md that
// a Clock that panics never takes the process down and the error names
// the Clock, in the calls that read the Clock in the caller's goroutine:
// SetWithTTL, Get of a key with a TTL, List and Namespaces. Each must
// return an error naming Options.Clock instead of panicking, and the
// Store must go on working once the Clock does.
func TestPanickingClockInCalls(t *testing.T) {
	now, broken := breakableClock()
	s := mustOpen(t, dbPath(t), opstate.Options{Clock: now})
	if err := s.SetWithTTL("ns", "ttl", "v", time.Hour); err != nil {
		t.Fatal(err)
	}
	wantGet(t, s, "ns", "ttl", "v", true) // cached, with its expiry
	tests := []struct {
		name string
		call func() error
	}{
		{"SetWithTTL", func() error { return s.SetWithTTL("ns", "k", "v", time.Hour) }},
		{"Get", func() error { _, err := s.Get("ns", "ttl"); return err }},
		{"List", func() error { _, err := s.List("ns"); return err }},
		{"Namespaces", func() error { _, err := s.Namespaces(); return err }},
	}
	broken.Store(true)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			panicked := func() (p any) {
				defer func() { p = recover() }()
				err = tt.call()
				return nil
			}()
			if panicked != nil {
				t.Fatalf("%s with a panicking Clock panicked: %v; want an error naming Options.Clock", tt.name, panicked)
			}
			if err == nil || !strings.Contains(err.Error(), "Clock panicked") {
				t.Errorf("%s with a panicking Clock = %v; want an error naming Options.Clock", tt.name, err)
			}
		})
	}
	broken.Store(false)
	wantGet(t, s, "ns", "ttl", "v", true)
	if _, err := s.Namespaces(); err != nil {
		t.Errorf("Namespaces once the Clock works = %v", err)
	}
}

// TestErrorMessages checks that an error names the call that failed and
// says "opstate:" once, at the start, however many layers wrapped it, and
// that errors.Is still finds the sentinel.
func TestErrorMessages(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notDB, []byte("not a database, just notes"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "state.db")
	s := mustOpen(t, path, opstate.Options{BusyTimeout: time.Millisecond, SyncInterval: -1})
	holdWriteLock(t, path)
	_, openErr := opstate.NewStore(notDB)
	_, dirErr := opstate.NewStore(dir)
	tests := []struct {
		name   string
		err    error
		want   error
		prefix string
	}{
		{"Open of a text file", openErr, opstate.ErrNotDatabase, "opstate: open " + notDB + ": "},
		{"Open of a directory", dirErr, opstate.ErrNotDatabase, "opstate: open " + dir + ": "},
		{"Set under another lock", s.Set("ns", "k", "v"), opstate.ErrBusy, `opstate: set "ns"/"k": `},
		{"DeleteNamespace under another lock", s.DeleteNamespace("ns"), opstate.ErrBusy, `opstate: delete namespace "ns": `},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s = %v; want %v", tt.name, tt.err, tt.want)
			continue
		}
		msg := tt.err.Error()
		if !strings.HasPrefix(msg, tt.prefix) || strings.Count(msg, "opstate:") != 1 {
			t.Errorf("%s = %q; want it to begin %q and say \"opstate:\" once", tt.name, msg, tt.prefix)
		}
	}
}

// holdWriteLock takes the write lock of the file at path on a connection of
// its own (BEGIN IMMEDIATE) until the test ends.
func holdWriteLock(t *testing.T, path string) {
	t.Helper()
	conn, err := sqlDB(t, path).Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.ExecContext(context.Background(), "ROLLBACK")
		conn.Close()
	})
}

// breakableClock returns an Options.Clock that panics with "clock broken"
// while broken is set.
func breakableClock() (now func() time.Time, broken *atomic.Bool) {
	clk, broken := newClock(), new(atomic.Bool)
	return func() time.Time {
		if broken.Load() {
			panic("clock broken")
		}
		return clk.Now()
	}, broken
}
