package serve_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/internal/serve"
)

// BenchmarkEventLatency measures how long a change takes to reach a
// client of GET /v1/namespaces/{ns}/events, one change at a time, the
// client reading the stream with net/http's client on loopback:
//
//   - own-put: from the moment the client that sent a PUT has its 204
//     until the stream's client has read the event. The event may come
//     first (the Store sends it once its reads serve the value, which is
//     before the PUT's answer is written): such a latency is negative,
//     and first-% counts them; from-put-p99-µs is the p99 from the moment
//     the PUT was sent instead.
//   - other-process: the write is a Set of another process's Store on the
//     same file (a child process, which answers on a pipe once its Set
//     has returned), from that answer until the event is read. The
//     server's Store sees others' writes within SyncInterval (5 ms by
//     default), so the figure is that wait plus the delivery. Each write
//     comes after a random pause of up to twice SyncInterval, so that
//     writes fall anywhere in the interval between two checks.
//
// Metrics: p50-µs, p99-µs and max-µs of that latency.
func BenchmarkEventLatency(b *testing.B) {
	b.Run("own-put", func(b *testing.B) {
		f := start(b, serve.Options{})
		events := readValues(b, f, "/v1/namespaces/ns/events")
		client := benchClient()
		defer client.CloseIdleConnections()
		var lat, fromPut []time.Duration
		first := 0
		for i := 0; b.Loop(); i++ {
			want := "v-" + strconv.Itoa(i)
			sent := time.Now()
			req, err := http.NewRequest("PUT", f.url+"/v1/namespaces/ns/keys/k", strings.NewReader(want))
			if err != nil {
				b.Fatal(err)
			}
			resp, body, err := send(client, req)
			if err != nil {
				b.Fatal(err)
			}
			answered := time.Now()
			if resp.StatusCode != 204 {
				b.Fatalf("PUT = %d %q; want 204", resp.StatusCode, body)
			}
			at := events.await(b, want)
			if at.Before(answered) {
				first++
			}
			lat = append(lat, at.Sub(answered))
			fromPut = append(fromPut, at.Sub(sent))
		}
		reportLatency(b, lat)
		slices.Sort(fromPut)
		b.ReportMetric(float64(fromPut[len(fromPut)*99/100].Nanoseconds())/1e3, "from-put-p99-µs")
		b.ReportMetric(100*float64(first)/float64(len(lat)), "first-%")
	})
	b.Run("other-process", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "serve.db")
		s, err := opstate.Open(path, opstate.Options{SweepInterval: -1})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		f := serveStore(b, s, serve.Options{})
		events := readValues(b, f, "/v1/namespaces/ns/events")
		w := startChild(b, "writer", path)
		var lat []time.Duration
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			time.Sleep(time.Duration(rand.Int64N(int64(2 * opstate.DefaultSyncInterval))))
			b.StartTimer()
			want := "v-" + strconv.Itoa(i)
			if got := w.ask(b, "ns k "+want); got != "ok" {
				b.Fatalf("writer: %s", got)
			}
			written := time.Now()
			lat = append(lat, events.await(b, want).Sub(written))
		}
		reportLatency(b, lat)
	})
}

// reportLatency reports the p50, p99 and largest of lat.
func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	b.ReportMetric(us(lat[len(lat)/2]), "p50-µs")
	b.ReportMetric(us(lat[len(lat)*99/100]), "p99-µs")
	b.ReportMetric(us(lat[len(lat)-1]), "max-µs")
}

// valueStream is a client of a key-value event stream that notes when
// each set event's value was read.
type valueStream struct {
	values chan timedValue
	errc   chan error
}

// timedValue is a set event's value and when it was read.
type timedValue struct {
	value string
	at    time.Time
}

// readValues opens the event stream at path on f and returns once its
// opening comment has come (the Watch is running); it is closed at the
// benchmark's end.
func readValues(b testing.TB, f *fixture, path string) *valueStream {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", f.url+path, nil)
	if err != nil {
		b.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	vs := &valueStream{values: make(chan timedValue, 1024), errc: make(chan error, 1)}
	opened := make(chan struct{})
	stopped := make(chan struct{})
	b.Cleanup(func() { cancel(); resp.Body.Close(); <-stopped })
	go func() {
		defer close(stopped)
		br := bufio.NewReader(resp.Body)
		for first := true; ; first = false {
			line, err := br.ReadString('\n')
			if err != nil {
				vs.errc <- err
				return
			}
			if first {
				close(opened)
			}
			data, ok := strings.CutPrefix(line, "data: ")
			if !ok {
				continue
			}
			at := time.Now()
			var ev struct{ Op, Value string }
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				vs.errc <- fmt.Errorf("event %q: %v", data, err)
				return
			}
			if ev.Op == "set" {
				vs.values <- timedValue{ev.Value, at}
			}
		}
	}()
	select {
	case <-opened:
	case err := <-vs.errc:
		b.Fatalf("GET %s: %v", path, err)
	case <-time.After(wait):
		b.Fatalf("GET %s: no opening comment within %v", path, wait)
	}
	return vs
}

// await returns when the event setting value was read; events of other
// values are skipped.
func (vs *valueStream) await(b testing.TB, value string) time.Time {
	b.Helper()
	timeout := time.After(wait)
	for {
		select {
		case v := <-vs.values:
			if v.value == value {
				return v.at
			}
		case err := <-vs.errc:
			b.Fatalf("event stream: %v", err)
		case <-timeout:
			b.Fatalf("no event setting %q within %v", value, wait)
		}
	}
}

func init() {
	// writer [PATH] opens a Store on PATH and, for each line "NS KEY
	// VALUE" of its input, sets it and answers "ok" once Set returned.
	childRoles["writer"] = func(args []string) int {
		s, err := opstate.Open(args[0], opstate.Options{SweepInterval: -1})
		if err != nil {
			fmt.Println(err)
			return 1
		}
		defer s.Close()
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			f := strings.SplitN(in.Text(), " ", 3)
			if len(f) != 3 {
				fmt.Printf("want NS KEY VALUE, got %q\n", in.Text())
				return 1
			}
			if err := s.Set(f[0], f[1], f[2]); err != nil {
				fmt.Println(err)
				return 1
			}
			fmt.Println("ok")
		}
		return 0
	}
}
