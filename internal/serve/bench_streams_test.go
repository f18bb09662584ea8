//go:build unix

package serve_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/internal/serve"
)

// BenchmarkSetStreams measures a Set on a namespace that 0 to 10,000
// event streams follow, their clients in a child process reading every
// event, against a Set with none, in the same run: the Store's Sets are
// timed for a second before the streams open and again after they
// closed (none-ns/set, the mean of the two), and vs-none is a Set's time
// with the streams open (ns/op) over that. The writes cycle through 100
// keys of the flags namespace, as BenchmarkSetWatched's in the root
// package do. The rows: events=N streams of GET
// /v1/namespaces/flags/events, ofrep=N of the OFREP event stream, and
// idle=N: N idle keep-alive connections, each having read a key once.
//
// With the streams (or connections) open and idle, before the Sets: the
// server process's heap and goroutine stacks per stream (B/stream, the sum of heap-B/stream
// and stack-B/stream; after a GC, the Go runtime's HeapInuse and
// StackInuse, so not the kernel's socket buffers) and its goroutines per
// stream.
//
// After the Sets, every client must converge: for events=N, each client
// receives the write that follows the timed ones however far behind it is
// (drain-ms, from that write until the last client had it); then, once
// no client has received anything for quiet, one more write must reach
// every client (fanout-ms, the time it takes to reach them all: an OFREP
// client receives a refetchEvaluation, which carries no key, so only a
// write made when all is quiet can be told apart). cpu-µs/set is the
// server process's CPU time per timed Set, its streams' work included;
// chunks/set and events/set count the chunks of the streams' answers (a
// write of the server's is one chunk, or a few when large) and the events
// in them, per timed Set, as the clients read them while the Sets ran,
// and client-cpu-µs/set is the child process's CPU time meanwhile.
//
// 10,000 streams need about as many file descriptors in each process:
// the benchmark raises RLIMIT_NOFILE, and skips the row if it cannot.
func BenchmarkSetStreams(b *testing.B) {
	for _, row := range []struct {
		name   string
		n      int
		path   string // of the stream
		marker string // in an event of the stream that a write after the timed ones causes
	}{
		{"none", 0, "", ""},
		{"idle=10000", 10000, "/v1/namespaces/flags/keys/key-1", ""},
		{"events=1000", 1000, "/v1/namespaces/flags/events", `"key":"marker"`},
		{"events=10000", 10000, "/v1/namespaces/flags/events", `"key":"marker"`},
		{"ofrep=1000", 1000, "/ofrep/v1/events", "refetchEvaluation"},
		{"ofrep=10000", 10000, "/ofrep/v1/events", "refetchEvaluation"},
	} {
		b.Run(row.name, func(b *testing.B) {
			if err := ensureFiles(uint64(row.n) + 1024); err != nil {
				b.Skipf("%d streams need %d open files: %v", row.n, row.n+1024, err)
			}
			path := filepath.Join(b.TempDir(), "serve.db")
			s, err := opstate.Open(path, opstate.Options{SweepInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			f := serveStore(b, s, serve.Options{MaxConns: row.n + 64, MaxStreams: max(row.n, 1)})
			keys := make([]string, 100)
			for i := range keys {
				keys[i] = "key-" + strconv.Itoa(i)
			}
			set := func(i int) {
				if err := s.Set("flags", keys[i%len(keys)], "value-"+strconv.Itoa(i)); err != nil {
					b.Fatal(err)
				}
			}
			timeSets := func() time.Duration {
				start, i := time.Now(), 0
				for ; time.Since(start) < time.Second; i++ {
					set(i)
				}
				return time.Since(start) / time.Duration(i)
			}
			none := timeSets()

			var c *child
			var memory []func() // reports the memory metrics, once b.Loop has run
			if row.n > 0 {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				goroutines := runtime.NumGoroutine()
				c = startChild(b, "streams", f.addr, row.path, strconv.Itoa(row.n), row.marker)
				if got := c.ask(b, "open"); got != "open" {
					b.Fatalf("streams: %s", got)
				}
				if row.marker != "" {
					waitStreams(b, f.srv, int64(row.n))
				}
				time.Sleep(time.Second) // the server's goroutines settle
				runtime.GC()
				runtime.ReadMemStats(&after)
				per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(row.n) }
				heap, stack := per(after.HeapInuse, before.HeapInuse), per(after.StackInuse, before.StackInuse)
				gs := float64(runtime.NumGoroutine()-goroutines) / float64(row.n)
				memory = append(memory, func() {
					b.ReportMetric(heap+stack, "B/stream")
					b.ReportMetric(heap, "heap-B/stream")
					b.ReportMetric(stack, "stack-B/stream")
					b.ReportMetric(gs, "goroutines/stream")
				})
			}

			if c != nil {
				c.ask(b, "count")
			}
			cpu := processCPU(b)
			i := 0
			for b.Loop() {
				set(i)
				i++
			}
			b.ReportMetric(float64((processCPU(b)-cpu).Nanoseconds())/1e3/float64(i), "cpu-µs/set")
			if c != nil {
				var sends, events, clientCPU int64
				if _, err := fmt.Sscan(c.ask(b, "count"), &sends, &events, &clientCPU); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(sends)/float64(i), "chunks/set")
				b.ReportMetric(float64(events)/float64(i), "events/set")
				b.ReportMetric(float64(clientCPU)/float64(i), "client-cpu-µs/set")
			}
			for _, report := range memory {
				report()
			}

			if row.n > 0 && row.marker == "" {
				if got := c.ask(b, "close"); got != "closed" {
					b.Fatalf("connections: %s", got)
				}
			}
			if row.n > 0 && row.marker != "" {
				b.StopTimer()
				ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
				if row.marker == `"key":"marker"` {
					c.ask(b, "arm")
					t0 := time.Now()
					if err := s.Set("flags", "marker", "after the timed writes"); err != nil {
						b.Fatal(err)
					}
					if got := c.ask(b, "wait 120s"); got != "converged" {
						b.Fatalf("the write after the timed ones, within 2 minutes: %s", got)
					}
					b.ReportMetric(ms(time.Since(t0)), "drain-ms")
				}
				if got := c.ask(b, "quiet 5s"); got != "quiet" {
					b.Fatalf("streams: %s", got)
				}
				c.ask(b, "arm")
				t0 := time.Now()
				if err := s.Set("flags", "marker", "once all is quiet"); err != nil {
					b.Fatal(err)
				}
				if got := c.ask(b, "wait 120s"); got != "converged" {
					b.Fatalf("a write once all is quiet, within 2 minutes: %s", got)
				}
				b.ReportMetric(ms(time.Since(t0)), "fanout-ms")
				if got := c.ask(b, "close"); got != "closed" {
					b.Fatalf("streams: %s", got)
				}
				waitStreams(b, f.srv, 0)
			}
			none = (none + timeSets()) / 2
			b.ReportMetric(float64(none.Nanoseconds()), "none-ns/set")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(none.Nanoseconds()), "vs-none")
		})
	}
}

// waitStreams waits until srv has n event streams open.
func waitStreams(b testing.TB, srv *serve.Server, n int64) {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for srv.OpenStreams() != n {
		if time.Now().After(deadline) {
			b.Fatalf("%d event streams open; want %d", srv.OpenStreams(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ensureFiles raises the process's limit of open files to at least n,
// its hard limit included (which needs privilege).
func ensureFiles(n uint64) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	if l.Cur >= n {
		return nil
	}
	l.Cur, l.Max = n, max(l.Max, n)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("raise RLIMIT_NOFILE to %d: %w", n, err)
	}
	return nil
}

// processCPU returns the CPU time, user and system, the process has used;
// b may be nil in a child process, which cannot fail (getrusage of the
// process itself does not).
func processCPU(b testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil && b != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// streamClients are the event streams of the "streams" child: N
// connections to the server, each read by a goroutine of its own.
type streamClients struct {
	addr, path, marker string
	n                  int

	conns []net.Conn
	seen  []atomic.Bool // whether stream i has read an event holding marker since arm
	armed atomic.Bool
	// lastData is when a stream last read an event (UnixNano); seenN
	// counts the streams that saw the marker, dead those whose
	// connection ended.
	lastData    atomic.Int64
	seenN, dead atomic.Int64
	readers     sync.WaitGroup
	// sends counts the chunks the streams read (a write of the server's
	// is one chunk, or a few when large), and events the events in them.
	sends, events atomic.Int64
}

// open opens the N streams, 32 at a time, each once the server has sent
// its opening comment, and starts reading them.
func (sc *streamClients) open() error {
	sc.conns = make([]net.Conn, sc.n)
	sc.seen = make([]atomic.Bool, sc.n)
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= sc.n || failed.Load() != nil {
					return
				}
				if err := sc.dial(i); err != nil {
					err = fmt.Errorf("stream %d: %w", i, err)
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		return *err
	}
	return nil
}

// dial opens stream i and starts its reader.
func (sc *streamClients) dial(i int) error {
	c, err := net.Dial("tcp", sc.addr)
	if err != nil {
		return err
	}
	sc.conns[i] = c
	c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: opstate\r\n\r\n", sc.path); err != nil {
		return err
	}
	br := bufio.NewReaderSize(c, 1024)
	if sc.marker == "" { // an idle keep-alive connection, once answered
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		c.SetDeadline(time.Time{})
		return err
	}
	status, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	if status != "HTTP/1.1 200 OK\r\n" {
		return fmt.Errorf("answer %q; want 200", status)
	}
	for { // the headers, the first chunk's size, the opening comment
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if strings.HasPrefix(line, ": opstate event stream") {
			break
		}
	}
	c.SetDeadline(time.Time{})
	sc.readers.Add(1)
	go sc.read(i, br)
	return nil
}

// read reads stream i until its connection ends. The answer is chunked:
// each event comes whole in a chunk of its own, between the lines of
// chunk sizes.
func (sc *streamClients) read(i int, br *bufio.Reader) {
	defer sc.readers.Done()
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			sc.dead.Add(1)
			return
		}
		if isChunkSize(line) {
			sc.sends.Add(1)
			continue
		}
		if !strings.HasPrefix(string(line), "data: ") {
			continue
		}
		sc.events.Add(1)
		sc.lastData.Store(time.Now().UnixNano())
		if sc.armed.Load() && strings.Contains(string(line), sc.marker) && sc.seen[i].CompareAndSwap(false, true) {
			sc.seenN.Add(1)
		}
	}
}

// isChunkSize reports whether line is the size line of a chunk.
func isChunkSize(line []byte) bool {
	hex, ok := strings.CutSuffix(string(line), "\r\n")
	if !ok || hex == "" {
		return false
	}
	for _, c := range []byte(hex) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// arm forgets which streams saw the marker.
func (sc *streamClients) arm() {
	sc.armed.Store(false)
	for i := range sc.seen {
		sc.seen[i].Store(false)
	}
	sc.seenN.Store(0)
	sc.armed.Store(true)
}

// quiet returns once no stream has read an event for d.
func (sc *streamClients) quiet(d time.Duration) {
	for {
		since := time.Since(time.Unix(0, sc.lastData.Load()))
		if since >= d {
			return
		}
		time.Sleep(d - since)
	}
}

// await waits up to d for every stream to see the marker, and says how
// it ended.
func (sc *streamClients) await(d time.Duration) string {
	deadline := time.Now().Add(d)
	for sc.seenN.Load() < int64(sc.n) {
		if time.Now().After(deadline) {
			return fmt.Sprintf("%d of %d streams saw it (%d connections ended)", sc.seenN.Load(), sc.n, sc.dead.Load())
		}
		time.Sleep(time.Millisecond)
	}
	return "converged"
}

// close closes every stream and waits for the readers.
func (sc *streamClients) close() {
	for _, c := range sc.conns {
		if c != nil {
			c.Close()
		}
	}
	sc.readers.Wait()
}

func init() {
	// streams ADDR PATH N MARKER opens N event streams at PATH on ADDR and
	// takes commands, a line each, answering a line: open (the streams;
	// "open" once all have their opening comment), quiet DURATION
	// ("quiet" once no stream read an event for DURATION), count ("CHUNKS
	// EVENTS CPU": the chunks and the events the streams read, and the
	// process's CPU time in µs, since the last count), arm (forget
	// which streams saw MARKER: "armed"), wait DURATION ("converged"
	// once every stream read an event holding MARKER since arm, else
	// what was missing), close ("closed").
	childRoles["streams"] = func(args []string) int {
		n, err := strconv.Atoi(args[2])
		if err != nil {
			fmt.Println(err)
			return 1
		}
		if err := ensureFiles(uint64(n) + 1024); err != nil {
			fmt.Println(err)
			return 1
		}
		sc := &streamClients{addr: args[0], path: args[1], n: n, marker: args[3]}
		var lastCPU time.Duration
		defer sc.close()
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			cmd, arg, _ := strings.Cut(in.Text(), " ")
			var d time.Duration
			if arg != "" {
				if d, err = time.ParseDuration(arg); err != nil {
					fmt.Println(err)
					return 1
				}
			}
			switch cmd {
			case "open":
				if err := sc.open(); err != nil {
					fmt.Println(err)
					return 1
				}
				fmt.Println("open")
			case "quiet":
				sc.quiet(d)
				fmt.Println("quiet")
			case "arm":
				sc.arm()
				fmt.Println("armed")
			case "wait":
				fmt.Println(sc.await(d))
			case "count":
				cpu := processCPU(nil)
				fmt.Println(sc.sends.Swap(0), sc.events.Swap(0), (cpu - lastCPU).Microseconds())
				lastCPU = cpu
			case "close":
				sc.close()
				fmt.Println("closed")
			default:
				fmt.Printf("unknown command %q\n", cmd)
				return 1
			}
		}
		return 0
	}
}
