package persist_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate/internal/persist"
	"github.com/d8da9184/opstate/storage"
)

// openPolled opens a DB at path whose listener polls every interval, and
// reports to log.
func openPolled(t *testing.T, path string, interval time.Duration, log *slog.Logger) *persist.DB {
	t.Helper()
	db, err := persist.Open(path, persist.Options{PollInterval: interval, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestPollerProtocol checks the storage.Poller contract of the SQLite
// backend's listener: Next returns after every check, with Foreign false
// when nobody else committed and the keys another connection changed when
// one did; Poll checks at once; a check that fails is a Reset, not an
// error; both end with ctx's error once ctx ends.
func TestPollerProtocol(t *testing.T) {
	path := tempPath(t)
	var logged bytes.Buffer
	db := openPolled(t, path, time.Millisecond, slog.New(slog.NewTextHandler(&logged, nil)))
	l, err := db.Listen(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p, ok := l.(storage.Poller)
	if !ok {
		t.Fatalf("the listener of a file is a %T, not a storage.Poller", l)
	}
	ch, err := l.Next(t.Context())
	if err != nil || ch.Foreign {
		t.Fatalf("Next with nothing committed = %+v, %v; want a report with Foreign false", ch, err)
	}
	apply(t, db, t0, putW("ns", "own", "v", 0))
	if ch, err := p.Poll(t.Context()); err != nil || ch.Foreign || len(ch.Keys) > 0 {
		t.Errorf("Poll after the DB's own write = %+v, %v; want nothing foreign", ch, err)
	}
	execRaw(t, path, `INSERT INTO operational_state VALUES ('ns', 'other', 'v', '2026-01-01T00:00:00.000Z', NULL)`)
	ch, err = p.Poll(t.Context())
	if err != nil || !ch.Foreign || !slices.Equal(ch.Keys, keys("ns", "other")) {
		t.Errorf("Poll after another connection's write = %+v, %v; want ns/other", ch, err)
	}
	execRaw(t, path, `UPDATE operational_state SET value = 'w' WHERE key = 'other'`)
	ch, err = l.Next(t.Context())
	if err != nil || !ch.Foreign || !slices.Equal(ch.Keys, keys("ns", "other")) {
		t.Errorf("Next after another connection's write = %+v, %v; want ns/other", ch, err)
	}

	// A check that fails: operational_state replaced by a table of
	// another shape, which the check refuses to repair (ErrSchema).
	execRaw(t, path, `DROP TABLE operational_state`, `CREATE TABLE operational_state (x)`)
	ch, err = p.Poll(t.Context())
	if err != nil || !ch.Reset || !ch.Foreign {
		t.Errorf("Poll after operational_state was replaced = %+v, %v; want a Reset, no error", ch, err)
	}
	if !strings.Contains(logged.String(), "checking for other writers failed") {
		t.Errorf("the failed check was not reported to the Logger; it logged %q", logged.String())
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := l.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Next on an ended context = %v; want context.Canceled", err)
	}
	if _, err := p.Poll(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Poll on an ended context = %v; want context.Canceled", err)
	}
}

// TestQuietListener checks that a private database, which nobody else can
// write, and a DB without a PollInterval get a listener that reports
// nothing and does not poll: its Next returns only when ctx ends.
func TestQuietListener(t *testing.T) {
	for _, path := range []string{":memory:", tempPath(t)} {
		db, err := persist.Open(path, persist.Options{})
		if err != nil {
			t.Fatal(err)
		}
		l, err := db.Listen(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if _, polls := l.(storage.Poller); polls {
			t.Errorf("%s: the listener polls; want one that reports nothing", path)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		ch, err := l.Next(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: Next = %+v, %v; want it to wait for ctx", path, ch, err)
		}
		l.Close()
		db.Close()
	}
}
