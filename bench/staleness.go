package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/pgstate"
	"github.com/jackc/pgx/v5"
)

// The staleness rows measure how long after a write in another process
// has returned this process serves it. This program, run again as a child
// process that plays a writer, owns the writing connection: for each value
// the parent sends on the child's standard input, the child writes it
// and answers on its standard output once the write has returned. The
// parent stamps the answer's arrival (t_reply) and meanwhile waits until
// it serves the value itself (t_seen). Processes share no monotonic clock,
// so both instants are the parent's: staleness = t_seen - t_reply, which
// is negative when the notification outruns the child's answer through
// the pipe. One op is one round, from sending the value to serving it.

const (
	// childRoleEnv, set in the environment of this program run again as a
	// child, names the writer it plays (a key of childWriters); main and
	// TestMain then play it instead of anything else.
	childRoleEnv = "OPSTATE_BENCH_CHILD"
	// childDSNEnv is the child's connection string.
	childDSNEnv = "OPSTATE_BENCH_DSN"
)

// staleTimeout bounds each wait of a round and the child's start.
const staleTimeout = 10 * time.Second

// staleKey is the one key the staleness rows write.
var staleKey = keyName(0)

// childWriters opens the writer a child plays on dsn: its write of
// staleKey, and what closes it.
var childWriters = map[string]func(ctx context.Context, dsn string) (set func(value string) error, close func() error, err error){
	// A second Store on the parent's schema.
	"opstate-pg": func(ctx context.Context, dsn string) (func(string) error, func() error, error) {
		st, err := pgstate.Open(ctx, dsn, opstate.Options{SweepInterval: -1})
		if err != nil {
			return nil, nil, err
		}
		return func(v string) error { return st.Set(namespace, staleKey, v) }, st.Close, nil
	},
	// A plain connection and the bare upsert, which fires the bare
	// table's notifying trigger (openStaleListen).
	"pgx-listen": func(ctx context.Context, dsn string) (func(string) error, func() error, error) {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return nil, nil, err
		}
		set := func(v string) error {
			_, err := c.Exec(context.Background(), pgxUpsert, namespace, staleKey, v)
			return err
		}
		return set, func() error { return c.Close(context.Background()) }, nil
	},
}

// runChildRole plays the writer named in the environment, if any, and
// reports whether it did; main and TestMain call it first.
func runChildRole() (code int, ran bool) {
	role := os.Getenv(childRoleEnv)
	if role == "" {
		return 0, false
	}
	open, ok := childWriters[role]
	if !ok {
		fmt.Fprintf(os.Stderr, "bench child: unknown role %q\n", role)
		return 2, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), pgSetupTimeout)
	set, closeWriter, err := open(ctx, os.Getenv(childDSNEnv))
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench child %s: %v\n", role, err)
		return 1, true
	}
	if err := serveWrites(os.Stdin, os.Stdout, set); err != nil {
		fmt.Fprintf(os.Stderr, "bench child %s: %v\n", role, err)
		closeWriter()
		return 1, true
	}
	if err := closeWriter(); err != nil {
		fmt.Fprintf(os.Stderr, "bench child %s: close: %v\n", role, err)
		return 1, true
	}
	return 0, true
}

// serveWrites answers "ready", then, for each line of in, sets it and
// answers "ok" and how many nanoseconds set took, or "err" and a quoted
// error, until in ends.
func serveWrites(in io.Reader, out io.Writer, set func(string) error) error {
	bw := bufio.NewWriter(out)
	fmt.Fprintln(bw, "ready")
	if err := bw.Flush(); err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		start := time.Now()
		err := set(sc.Text())
		took := time.Since(start)
		if err != nil {
			fmt.Fprintf(bw, "err %q\n", err.Error())
		} else {
			fmt.Fprintf(bw, "ok %d\n", took.Nanoseconds())
		}
		if err := bw.Flush(); err != nil {
			return err
		}
	}
	return sc.Err()
}

// reply is one answer of a child.
type reply struct {
	at    time.Time     // when this process read it
	set   time.Duration // how long the child's write took, by its clock
	ready bool          // the child's first answer: it is set up
	err   error         // the write failed, or the answer is not one
}

// parseReply reads one line of serveWrites, read at at.
func parseReply(at time.Time, line string) reply {
	r := reply{at: at}
	word, rest, _ := strings.Cut(line, " ")
	switch word {
	case "ready":
		r.ready = true
	case "ok":
		ns, err := strconv.ParseInt(rest, 10, 64)
		if err != nil {
			r.err = fmt.Errorf("bad answer %q", line)
		}
		r.set = time.Duration(ns)
	case "err":
		msg, err := strconv.Unquote(rest)
		if err != nil {
			msg = rest
		}
		r.err = errors.New(msg)
	default:
		r.err = fmt.Errorf("bad answer %q", line)
	}
	return r
}

// writerChild is a running child writer.
type writerChild struct {
	role    string
	cmd     *exec.Cmd
	in      io.WriteCloser
	replies chan reply // its answers, stamped on arrival; closed when its output ends
}

// startChild runs this program again as the writer role on dsn and
// waits until it is set up.
func startChild(role, dsn string) (*writerChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childRoleEnv+"="+role, childDSNEnv+"="+dsn)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &writerChild{role: role, cmd: cmd, in: in}
	if err := c.start(out); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s child: %w", role, err)
	}
	return c, nil
}

// start reads the answers of out into c.replies, stamped on arrival, and
// waits for the first: ready.
func (c *writerChild) start(out io.Reader) error {
	c.replies = make(chan reply, 1)
	go func() {
		defer close(c.replies)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.replies <- parseReply(time.Now(), sc.Text())
		}
	}()
	r, err := c.next()
	if err == nil && !r.ready {
		err = fmt.Errorf("first answer %+v; want ready", r)
	}
	return err
}

// next returns the child's next answer.
func (c *writerChild) next() (reply, error) {
	t := time.NewTimer(staleTimeout)
	defer t.Stop()
	select {
	case r, ok := <-c.replies:
		if !ok {
			return reply{}, errors.New("child exited")
		}
		return r, nil
	case <-t.C:
		return reply{}, fmt.Errorf("no answer within %v", staleTimeout)
	}
}

// Close ends the child's input and waits for it to exit.
func (c *writerChild) Close() error {
	c.in.Close()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%s child: %w", c.role, err)
		}
		return nil
	case <-time.After(staleTimeout):
		c.cmd.Process.Kill()
		return fmt.Errorf("%s child: still running %v after its input ended; killed", c.role, staleTimeout)
	}
}

// staleness is one implementation of the staleness rows: a child that
// writes and the way this process waits to serve what it wrote.
type staleness struct {
	child *writerChild
	// await returns when this process serves value, having served prev
	// until then, and the instant it did.
	await func(prev, value string) (time.Time, error)
	prev  string // the value this process serves now
	seq   int    // rounds so far: the next value is ring[seq % ringLen]
}

// round has the child write value and returns the staleness it measured
// (t_seen - t_reply) and how long the child's write took by its clock.
func (s *staleness) round(value string) (stale, set time.Duration, err error) {
	if _, err := io.WriteString(s.child.in, value+"\n"); err != nil {
		return 0, 0, fmt.Errorf("%s child: %w", s.child.role, err)
	}
	seen, err := s.await(s.prev, value)
	if err != nil {
		return 0, 0, err
	}
	r, err := s.child.next()
	if err == nil {
		err = r.err
	}
	if err != nil {
		return 0, 0, fmt.Errorf("%s child: %w", s.child.role, err)
	}
	s.prev = value
	return seen.Sub(r.at), r.set, nil
}

// openStaleOpstate opens a Store on a schema of its own, sets staleKey and
// starts a child with a second Store on that schema.
func (s *stores) openStaleOpstate() error {
	if s.staleOpstate != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), pgSetupTimeout)
	defer cancel()
	st, dsn, err := s.pgStore(ctx)
	if err != nil {
		return err
	}
	first := s.w.values[0]
	if err := st.Set(namespace, staleKey, first); err != nil {
		return err
	}
	c, err := startChild("opstate-pg", dsn)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, c.Close)
	s.staleOpstate = &staleness{child: c, prev: first,
		await: func(prev, value string) (time.Time, error) { return awaitGet(st, prev, value) }}
	return nil
}

// awaitGet calls st.Get in a tight loop until it serves value, which
// cached prev before: Store.Get is what a caller of opstate polls.
func awaitGet(st *opstate.Store, prev, value string) (time.Time, error) {
	deadline := time.Now().Add(staleTimeout)
	for i := 1; ; i++ {
		v, err := st.Get(namespace, staleKey)
		if err != nil {
			return time.Time{}, fmt.Errorf("opstate-pg Get: %w", err)
		}
		if v == value {
			return time.Now(), nil
		}
		if v != prev {
			return time.Time{}, fmt.Errorf("opstate-pg Get = %q; want %q (before the write) or %q (after)", v, prev, value)
		}
		if i%4096 == 0 && time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("opstate-pg: the other process's write of %q not served within %v", value, staleTimeout)
		}
	}
}

// openStaleListen creates a bare table with a trigger that notifies each
// row's new value, LISTENs on a plain connection and starts a child that
// upserts with pgx: the least a process can do to hear another's write.
func (s *stores) openStaleListen() error {
	if s.staleListen != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), pgSetupTimeout)
	defer cancel()
	schema, dsn, err := s.bareSchema(ctx, false)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, func() error { return conn.Close(context.Background()) })
	channel := schema // unique, and a plain identifier
	_, err = conn.Exec(ctx, `
CREATE FUNCTION bench_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('`+channel+`', NEW.value);
	RETURN NULL;
END $$;
CREATE TRIGGER bench_notify AFTER INSERT OR UPDATE ON operational_state
	FOR EACH ROW EXECUTE FUNCTION bench_notify();
LISTEN `+channel)
	if err != nil {
		return err
	}
	c, err := startChild("pgx-listen", dsn)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, c.Close)
	s.staleListen = &staleness{child: c,
		await: func(_, value string) (time.Time, error) { return awaitNotification(conn, value) }}
	return nil
}

// awaitNotification waits for the notification of value on conn.
func awaitNotification(conn *pgx.Conn, value string) (time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), staleTimeout)
	defer cancel()
	n, err := conn.WaitForNotification(ctx)
	at := time.Now()
	if err != nil {
		return time.Time{}, fmt.Errorf("pgx-listen: %w", err)
	}
	if n.Payload != value {
		return time.Time{}, fmt.Errorf("pgx-listen: notified %q; want %q", n.Payload, value)
	}
	return at, nil
}

// percentile returns the nearest-rank p-quantile (0 < p <= 1) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(i, 0)]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// stalenessBench runs rounds of the staleness that get returns once the
// row is set up, and reports the p50 and p99 of their staleness and the
// mean of the child's write; ns/op is the mean round.
func stalenessBench(get func() *staleness, w *workload, fail *failures) func(*testing.B) {
	return func(b *testing.B) {
		s := get()
		stale := make([]time.Duration, 0, b.N)
		var set time.Duration
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			d, took, err := s.round(w.ring[s.seq%ringLen])
			if err != nil {
				fail.add(err)
				return
			}
			s.seq++
			stale = append(stale, d)
			set += took
		}
		b.StopTimer()
		b.ReportMetric(micros(percentile(stale, 0.50)), "p50-µs")
		b.ReportMetric(micros(percentile(stale, 0.99)), "p99-µs")
		b.ReportMetric(micros(set)/float64(b.N), "set-µs")
	}
}
