//go:build unix

package opstate_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"modernc.org/sqlite" // and database/sql driver "sqlite", for integrity_check

	"github.com/d8da9184/opstate"
)

// Environment of the child process of TestCrashDurability.
const (
	crashChildEnv      = "OPSTATE_CRASH_CHILD"      // database path; set only in the child
	crashRoundEnv      = "OPSTATE_CRASH_ROUND"      // round number, part of every key
	crashDurabilityEnv = "OPSTATE_CRASH_DURABILITY" // "full" for DurabilityFull
)

// crashWriters is the number of child goroutines writing unique keys and
// counters.
const crashWriters = 4

// crashValue is the value of unique key i: its number and up to 1.5 KB of
// padding, so that rows vary in size and some overflow a page.
func crashValue(i int) string {
	return fmt.Sprintf("v%d-%s", i, strings.Repeat("x", i*37%1500))
}

// TestCrashDurability kills a process writing to a store with SIGKILL at a
// random moment, several times over the same file, and checks after each
// kill that every acknowledged write survived. Most kills come 50 to 400 ms
// after the child's first acknowledgement or after a random number of them;
// one in four comes up to 300 ms after the child starts, which may be
// during Open and the recovery of the previous kill.
//
// The child (crashChild, this test binary run again) writes from four
// goroutines: goroutine g sets unique keys "crash"/"r<round>-g<g>-<i>" to
// crashValue(i), and after each one the counter "counter"/"g<g>" to the next
// number, continuing from the value it reads at start. A fifth goroutine
// sets keys with TTLs of 1 to 5 ms ("ttl"), keys with a TTL of a day
// ("long"), sets and then deletes keys ("del"), and calls DeleteExpired
// every fourth time round, while the background sweeper runs every
// millisecond, so that kills land in sweeps too. After every write returns nil the child
// writes an acknowledgement line to stdout, in one unbuffered write. The
// acknowledgements the parent reads from the pipe are the only writes it
// counts as acknowledged; a line cut short is ignored.
//
// After each kill the parent opens the file with a clock an hour ahead and
// checks:
//   - every acknowledged unique, "long" and counter write is there with its
//     value: a unique key i of goroutine g is present for i up to g's last
//     acknowledgement, may be present for the next one (in flight when
//     killed), and is missing beyond;
//   - each counter is at least its last acknowledged value and at most the
//     value in flight, and the child found it so at its next start;
//   - every acknowledged delete is there: a "del" key is present only if
//     it is the one in flight;
//   - every "ttl" key reads as missing;
//   - PRAGMA integrity_check, run through database/sql, reports "ok".
//
// Odd rounds open the store with DurabilityFull and FdatasyncOn, which
// syncs with fdatasync where modernc.org/sqlite offers it (the child
// checks that it does), the others with DurabilityNormal and the default
// fsync. A kill leaves the kernel's
// page cache, so this tells nothing of what either sync call leaves after
// a power loss. There are 5 rounds by
// default; set OPSTATE_CRASH_ROUNDS for more.
func TestCrashDurability(t *testing.T) {
	rounds := 5
	if s := os.Getenv("OPSTATE_CRASH_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("OPSTATE_CRASH_ROUNDS = %q; want a positive number", s)
		}
		rounds = n
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	path := filepath.Join(t.TempDir(), "crash.db")
	cs := newCrashState()
	for round := range rounds {
		d := opstate.DurabilityNormal
		if round%2 == 1 {
			d = opstate.DurabilityFull
		}
		// Mostly kill while the child writes; sometimes at a moment counted
		// from its start, which may fall in Open and its recovery.
		early := rng.IntN(4) == 0
		delay, from := time.Duration(50+rng.IntN(350))*time.Millisecond, "first acknowledgement"
		if early {
			delay, from = time.Duration(rng.IntN(300))*time.Millisecond, "start"
		}
		acks := 1 + rng.IntN(3000)
		n := cs.runChild(t, path, round, d, early, delay, acks)
		t.Logf("round %d (%v): killed after %d acknowledgements (limit %d, or %v after the %s)", round, d, n, acks, delay, from)
		cs.verify(t, path, round)
		crashIntegrity(t, path)
		if t.Failed() {
			t.Fatalf("round %d: stopping", round)
		}
	}
}

// crashState is what the parent knows of the acknowledged writes of every
// round so far.
type crashState struct {
	mu sync.Mutex // guards everything below: the pipe reader updates it

	// unique[round][g] is goroutine g's last acknowledged unique key, or -1.
	unique map[int]*[crashWriters]int
	// ctrAck is each counter's last acknowledged value, and ctrMax the
	// highest value it may hold: the one being written when killed.
	ctrAck, ctrMax [crashWriters]int64
	// long and del are the last acknowledged "long" and "del" keys of each
	// round, or -1.
	long, del map[int]int
	// acks counts the round's acknowledgements; reached is closed once
	// there are limit of them.
	acks    int
	limit   int
	reached chan struct{}
	// other keeps lines that are no acknowledgement, to show on failure.
	other []string
	// errs are protocol violations found while reading the pipe.
	errs []error
}

func newCrashState() *crashState {
	return &crashState{unique: make(map[int]*[crashWriters]int), long: make(map[int]int), del: make(map[int]int)}
}

// runChild starts the child for round, kills it delay after its first
// acknowledgement (or after its start, if early) or after limit
// acknowledgements, whichever comes first, reads every complete line it
// wrote, and returns how many acknowledgements it read.
func (cs *crashState) runChild(t *testing.T, path string, round int, d opstate.Durability, early bool, delay time.Duration, limit int) int {
	t.Helper()
	cs.mu.Lock()
	cs.unique[round] = &[crashWriters]int{-1, -1, -1, -1}
	cs.long[round], cs.del[round] = -1, -1
	cs.acks, cs.limit, cs.reached, cs.other = 0, limit, make(chan struct{}), nil
	cs.mu.Unlock()

	cmd := childCommand(t, "crash",
		crashChildEnv+"="+path,
		crashRoundEnv+"="+strconv.Itoa(round),
		crashDurabilityEnv+"="+d.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("StdoutPipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the child: %v", err)
	}
	first := make(chan struct{}) // closed at the first acknowledgement
	eof := make(chan struct{})
	go func() {
		defer close(eof)
		cs.read(stdout, round, first)
	}()

	killed := false
	if early {
		select {
		case <-time.After(delay):
		case <-cs.reached:
		case <-eof:
		}
	} else {
		timeout := time.NewTimer(time.Minute)
		defer timeout.Stop()
		select {
		case <-first:
			select {
			case <-time.After(delay):
			case <-cs.reached:
			case <-eof:
			}
		case <-eof:
		case <-timeout.C:
			t.Errorf("round %d: no acknowledgement from the child within a minute", round)
		}
	}
	select {
	case <-eof:
		// The child exited by itself; Wait reports how.
	default:
		if err := cmd.Process.Kill(); err != nil {
			t.Fatalf("kill: %v", err)
		}
		killed = true
	}
	<-eof // Wait closes the pipe: read it to the end first
	err = cmd.Wait()

	cs.mu.Lock()
	defer cs.mu.Unlock()
	if !killed || cmd.ProcessState.Exited() {
		t.Fatalf("round %d: the child ended before it was killed (%v)\nstdout lines:\n%s\nstderr:\n%s",
			round, err, strings.Join(cs.other, "\n"), stderr.String())
	}
	if s := stderr.String(); strings.Contains(s, "DATA RACE") || strings.Contains(s, "panic") {
		t.Errorf("round %d: child's stderr:\n%s", round, s)
	}
	for _, err := range cs.errs {
		t.Errorf("round %d: %v", round, err)
	}
	cs.errs = nil
	return cs.acks
}

// read records the acknowledgements in the child's output until EOF.
func (cs *crashState) read(r io.Reader, round int, first chan struct{}) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if line != "" {
				cs.mu.Lock()
				cs.other = append(cs.other, fmt.Sprintf("(cut short, ignored) %q", line))
				cs.mu.Unlock()
			}
			io.Copy(io.Discard, br)
			return
		}
		cs.mu.Lock()
		if cs.recordLocked(round, strings.TrimSuffix(line, "\n")) {
			if cs.acks++; cs.acks == 1 {
				close(first)
			}
			if cs.acks == cs.limit {
				close(cs.reached)
			}
		}
		cs.mu.Unlock()
	}
}

// recordLocked applies one complete line of the child's output, and reports
// whether it acknowledged a write.
func (cs *crashState) recordLocked(round int, line string) bool {
	f := strings.Fields(line)
	nums := make([]int64, len(f))
	for i := 1; i < len(f); i++ {
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			f = nil // not ours
			break
		}
		nums[i] = n
	}
	want := map[string]int{"start": 3, "ack": 3, "ctr": 3, "long": 2, "del": 2}
	if len(f) == 0 || want[f[0]] != len(f) {
		cs.other = append(cs.other, line)
		return false
	}
	bad := func(format string, args ...any) bool {
		cs.errs = append(cs.errs, fmt.Errorf("child line %q: %s", line, fmt.Sprintf(format, args...)))
		return false
	}
	g := int(nums[1])
	if f[0] == "start" || f[0] == "ack" || f[0] == "ctr" {
		if g < 0 || g >= crashWriters {
			return bad("no such goroutine")
		}
	}
	switch f[0] {
	case "start": // goroutine g read its counter at start
		c := nums[2]
		if c < cs.ctrAck[g] || c > cs.ctrMax[g] {
			return bad("counter g%d read at start = %d; want in [%d, %d]", g, c, cs.ctrAck[g], cs.ctrMax[g])
		}
		cs.ctrAck[g], cs.ctrMax[g] = c, c+1
		return false
	case "ack": // unique key i of goroutine g
		u := cs.unique[round]
		if i := int(nums[2]); i != u[g]+1 {
			return bad("acknowledges unique key %d after %d", i, u[g])
		}
		u[g]++
	case "ctr": // counter of goroutine g
		if c := nums[2]; c != cs.ctrMax[g] {
			return bad("acknowledges counter value %d; want %d", c, cs.ctrMax[g])
		}
		cs.ctrAck[g], cs.ctrMax[g] = cs.ctrMax[g], cs.ctrMax[g]+1
	case "long", "del":
		m := cs.long
		if f[0] == "del" {
			m = cs.del
		}
		if j := int(nums[1]); j != m[round]+1 {
			return bad("acknowledges %s key %d after %d", f[0], j, m[round])
		}
		m[round]++
	}
	return true
}

// verify opens the store at path and checks it holds every acknowledged
// write of the rounds up to round.
func (cs *crashState) verify(t *testing.T, path string, round int) {
	t.Helper()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	clock := func() time.Time { return time.Now().Add(time.Hour) }
	s, err := opstate.Open(path, opstate.Options{Clock: clock})
	if err != nil {
		t.Fatalf("round %d: Open after kill: %v", round, err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("round %d: Close: %v", round, err)
		}
	}()
	list := func(ns string) map[string]string {
		m, err := s.List(ns)
		if err != nil {
			t.Fatalf("round %d: List(%q): %v", round, ns, err)
		}
		return m
	}

	// Unique keys: every acknowledged one, perhaps the one in flight, no
	// other.
	got := list("crash")
	for r := 0; r <= round; r++ {
		for g, last := range cs.unique[r] {
			for i := 0; i <= last+1; i++ {
				key := fmt.Sprintf("r%d-g%d-%d", r, g, i)
				v, ok := got[key]
				switch {
				case !ok && i <= last:
					t.Errorf("round %d: acknowledged crash/%s is missing", round, key)
				case ok && v != crashValue(i):
					t.Errorf("round %d: crash/%s = %.30q; want %.30q", round, key, v, crashValue(i))
				}
				delete(got, key)
			}
			if last >= 0 {
				key := fmt.Sprintf("r%d-g%d-%d", r, g, last)
				if v, err := s.Get("crash", key); err != nil || v != crashValue(last) {
					t.Errorf("round %d: Get(crash, %q) = %.30q, %v; want %.30q", round, key, v, err, crashValue(last))
				}
			}
		}
	}
	for key := range got {
		t.Errorf("round %d: crash/%s is present, but was never written", round, key)
	}

	for g := range crashWriters {
		key := fmt.Sprintf("g%d", g)
		v, ok, err := s.Lookup("counter", key)
		if err != nil {
			t.Errorf("round %d: Lookup(counter, %q): %v", round, key, err)
			continue
		}
		n, perr := strconv.ParseInt(v, 10, 64)
		switch {
		case !ok && cs.ctrAck[g] == 0:
			// never acknowledged, and not written or the write was lost
		case !ok || perr != nil:
			t.Errorf("round %d: Lookup(counter, %q) = %q, %v; want a number", round, key, v, ok)
		case n < cs.ctrAck[g] || n > cs.ctrMax[g]:
			t.Errorf("round %d: counter/%s = %d; want in [%d, %d] (last acknowledged, in flight)", round, key, n, cs.ctrAck[g], cs.ctrMax[g])
		}
	}

	// "long" keys are like unique keys; of "del" keys, only the one in
	// flight may be present.
	long, del := list("long"), list("del")
	for r := 0; r <= round; r++ {
		for j := 0; j <= cs.long[r]+1; j++ {
			key := fmt.Sprintf("r%d-%d", r, j)
			v, ok := long[key]
			switch {
			case !ok && j <= cs.long[r]:
				t.Errorf("round %d: acknowledged long/%s is missing", round, key)
			case ok && v != fmt.Sprintf("l%d", j):
				t.Errorf("round %d: long/%s = %q; want %q", round, key, v, fmt.Sprintf("l%d", j))
			}
			delete(long, key)
		}
		delete(del, fmt.Sprintf("r%d-%d", r, cs.del[r]+1))
	}
	for key := range long {
		t.Errorf("round %d: long/%s is present, but was never written", round, key)
	}
	for key := range del {
		t.Errorf("round %d: del/%s is present, but its delete was acknowledged or it was never written", round, key)
	}

	// An hour later, every "ttl" key has expired.
	if m := list("ttl"); len(m) != 0 {
		t.Errorf("round %d: List(ttl) an hour later holds %d keys; want none", round, len(m))
	}
	key := fmt.Sprintf("r%d-0", round)
	if v, ok, err := s.Lookup("ttl", key); err != nil || ok {
		t.Errorf("round %d: Lookup(ttl, %q) an hour later = %q, %v, %v; want missing", round, key, v, ok, err)
	}
}

// crashIntegrity runs PRAGMA integrity_check on the file through
// database/sql and requires "ok".
func crashIntegrity(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatalf("sql.Open: %v", err)
	}
	defer db.Close()
	rows, err := db.Query("PRAGMA integrity_check")
	if err != nil {
		t.Fatalf("integrity_check: %v", err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatalf("integrity_check: %v", err)
		}
		got = append(got, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("integrity_check: %v", err)
	}
	if len(got) != 1 || got[0] != "ok" {
		t.Errorf("PRAGMA integrity_check = %q; want [ok]", got)
	}
}

func init() { childRoles["crash"] = crashChild }

// crashChild is the process TestCrashDurability kills. It writes until it
// is killed; see TestCrashDurability for what it writes and acknowledges.
func crashChild() int {
	path := os.Getenv(crashChildEnv)
	round, err := strconv.Atoi(os.Getenv(crashRoundEnv))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", crashRoundEnv, err)
		return 2
	}
	opts := opstate.Options{SweepInterval: time.Millisecond}
	if os.Getenv(crashDurabilityEnv) == opstate.DurabilityFull.String() {
		opts.Durability = opstate.DurabilityFull
		if fdatasyncOffered() {
			opts.Fdatasync = opstate.FdatasyncOn
		}
	}
	s, err := opstate.Open(path, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Open: %v\n", err)
		return 1
	}
	// The rounds with DurabilityFull commit with fdatasync (FdatasyncOn)
	// where modernc.org/sqlite offers it; the others keep fsync, the
	// default.
	if got, want := sqlite.FdatasyncEnabled(), opts.Durability == opstate.DurabilityFull && fdatasyncOffered(); got != want {
		fmt.Fprintf(os.Stderr, "with %v, sqlite.FdatasyncEnabled() = %v; want %v\n", opts.Durability, got, want)
		return 1
	}

	var mu sync.Mutex // one line at a time on stdout
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, format+"\n", args...) // one unbuffered write
	}
	fail := func(err error) {
		say("error %v", err)
		os.Exit(3)
	}

	for g := range crashWriters {
		go func() {
			ctr := fmt.Sprintf("g%d", g)
			v, ok, err := s.Lookup("counter", ctr)
			if err != nil {
				fail(err)
			}
			var c int64
			if ok {
				if c, err = strconv.ParseInt(v, 10, 64); err != nil {
					fail(fmt.Errorf("counter %s = %q: %w", ctr, v, err))
				}
			}
			say("start %d %d", g, c)
			for i := 0; ; i++ {
				if err := s.Set("crash", fmt.Sprintf("r%d-g%d-%d", round, g, i), crashValue(i)); err != nil {
					fail(err)
				}
				say("ack %d %d", g, i)
				c++
				if err := s.Set("counter", ctr, strconv.FormatInt(c, 10)); err != nil {
					fail(err)
				}
				say("ctr %d %d", g, c)
			}
		}()
	}
	go func() {
		for j := 0; ; j++ {
			key := fmt.Sprintf("r%d-%d", round, j)
			if err := s.SetWithTTL("ttl", key, fmt.Sprintf("t%d", j), time.Duration(1+j%5)*time.Millisecond); err != nil {
				fail(err)
			}
			if err := s.SetWithTTL("long", key, fmt.Sprintf("l%d", j), 24*time.Hour); err != nil {
				fail(err)
			}
			say("long %d", j)
			if err := s.Set("del", key, fmt.Sprintf("d%d", j)); err != nil {
				fail(err)
			}
			if err := s.Delete("del", key); err != nil {
				fail(err)
			}
			say("del %d", j)
			if j%4 == 0 {
				if _, err := s.DeleteExpired(context.Background()); err != nil && !errors.Is(err, opstate.ErrClosed) {
					fail(err)
				}
			}
		}
	}()
	time.Sleep(time.Minute)
	fmt.Fprintln(os.Stderr, "not killed within a minute")
	return 1
}
