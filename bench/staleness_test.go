package main

import (
	"errors"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

func TestWithParam(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"", "search_path=s"},
		{"host=/tmp port=5433", "host=/tmp port=5433 search_path=s"},
		{"postgres://u@h/db", "postgres://u@h/db?search_path=s"},
		{"postgresql://u@h/db?sslmode=disable", "postgresql://u@h/db?sslmode=disable&search_path=s"},
	} {
		if got := withParam(tc.dsn, "search_path", "s"); got != tc.want {
			t.Errorf("withParam(%q) = %q; want %q", tc.dsn, got, tc.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	ds := []time.Duration{5, -3, 1, 4, 2, 9, 7, 8, 6, 10} // -3..10 without 3
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{0.01, -3}, {0.1, -3}, {0.5, 5}, {0.51, 6}, {0.99, 10}, {1, 10}} {
		if got := percentile(ds, tc.p); got != tc.want {
			t.Errorf("percentile(%v) = %v; want %v", tc.p, got, tc.want)
		}
	}
	if ds[0] != 5 {
		t.Errorf("percentile sorted its argument: %v", ds)
	}
}

// pipeChild plays serveWrites with set in a goroutine behind pipes, as a
// child process does, and returns the writerChild that talks to it.
func pipeChild(t *testing.T, set func(string) error) *writerChild {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := serveWrites(inR, outW, set)
		outW.Close()
		done <- err
	}()
	c := &writerChild{role: "test", in: inW}
	if err := c.start(outR); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		inW.Close()
		if err := <-done; err != nil {
			t.Errorf("serveWrites: %v", err)
		}
	})
	return c
}

// TestRound checks one round of the protocol: the child writes the value
// sent, its answer carries how long the write took, and the staleness is
// the instant the value was seen less the instant the answer arrived,
// negative when it was seen first; a failed write is an error naming the
// child's.
func TestRound(t *testing.T) {
	var mu sync.Mutex
	var stored []string
	c := pipeChild(t, func(v string) error {
		if v == "bad" {
			return errors.New("write refused\nsecond line")
		}
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		stored = append(stored, v)
		mu.Unlock()
		return nil
	})
	// The value is "seen" at an instant chosen here, so that the
	// staleness is known: long before the answer, or long after it.
	var seenAt time.Time
	var awaited []string // "prev>value" of each await
	s := &staleness{child: c, prev: "v0", await: func(prev, value string) (time.Time, error) {
		awaited = append(awaited, prev+">"+value)
		return seenAt, nil
	}}

	seenAt = time.Now().Add(-time.Hour)
	stale, set, err := s.round("v1")
	if err != nil {
		t.Fatalf("round: %v", err)
	}
	if stale > -time.Hour+time.Second || stale < -time.Hour-time.Second {
		t.Errorf("staleness = %v; want about -1h (seen an hour before the answer)", stale)
	}
	if set < 2*time.Millisecond || set > time.Second {
		t.Errorf("set = %v; want the child's write, 2ms or a little more", set)
	}
	if s.prev != "v1" {
		t.Errorf("after the round prev = %q; want v1", s.prev)
	}

	seenAt = time.Now().Add(time.Hour)
	if stale, _, err = s.round("v2"); err != nil || stale < time.Hour-time.Second {
		t.Errorf("round = %v, %v; want about +1h", stale, err)
	}
	mu.Lock()
	if got := strings.Join(stored, ","); got != "v1,v2" {
		t.Errorf("the child wrote %q; want v1,v2", got)
	}
	mu.Unlock()

	if _, _, err := s.round("bad"); err == nil || !strings.Contains(err.Error(), "write refused\nsecond line") {
		t.Errorf("round of a failing write: %v; want the child's error", err)
	}
	if s.prev != "v2" {
		t.Errorf("after a failed round prev = %q; want v2", s.prev)
	}
	if got, want := strings.Join(awaited, ","), "v0>v1,v1>v2,v2>bad"; got != want {
		t.Errorf("awaited %s; want %s", got, want)
	}
}

func TestParseReplyBad(t *testing.T) {
	for _, line := range []string{"", "ok", "ok x", "done 5"} {
		if r := parseReply(time.Now(), line); r.err == nil {
			t.Errorf("parseReply(%q) = %+v; want an error", line, r)
		}
	}
}

// TestAwaitGet checks the parent's wait on a Store: it returns once Get
// serves the value written, and fails on a value that is neither the one
// before nor the one written.
func TestAwaitGet(t *testing.T) {
	st, err := opstate.Open(filepath.Join(t.TempDir(), "s.db"), opstate.Options{SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Set(namespace, staleKey, "old"); err != nil {
		t.Fatal(err)
	}
	written := make(chan time.Time, 1)
	go func() {
		time.Sleep(20 * time.Millisecond)
		written <- time.Now()
		if err := st.Set(namespace, staleKey, "new"); err != nil {
			t.Error(err)
		}
	}()
	seen, err := awaitGet(st, "old", "new")
	if err != nil {
		t.Fatalf("awaitGet: %v", err)
	}
	if w := <-written; seen.Before(w) {
		t.Errorf("awaitGet returned at %v, before the write began at %v", seen, w)
	}
	if _, err := awaitGet(st, "old", "newer"); err == nil {
		t.Errorf("awaitGet of %q while the Store serves %q: no error", "newer", "new")
	}
}
