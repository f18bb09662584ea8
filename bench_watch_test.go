package opstate_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
)

// BenchmarkSetWatched measures a Set on a namespace that 0 to 10,000
// watchers watch, each drained by a goroutine of its own as a server's
// event streams would be: what fanning a change out costs the writer. The
// ratio of a row to the row with none is the cost of the watchers. After
// the timed writes, every watcher must receive a last one.
func BenchmarkSetWatched(b *testing.B) {
	for _, n := range []int{0, 1, 100, 1000, 10000} {
		b.Run(fmt.Sprintf("watchers=%d", n), func(b *testing.B) {
			s := mustOpen(b, dbPath(b), opstate.Options{SyncInterval: -1, SweepInterval: -1})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var done sync.WaitGroup // each watcher has received the marker
			for range n {
				ch, err := s.Watch(ctx, "ns")
				if err != nil {
					b.Fatal(err)
				}
				done.Add(1)
				go func() {
					marked := false
					for ev := range ch {
						if !marked && ev.Key == "marker" {
							marked = true
							done.Done()
						}
					}
				}()
			}
			keys := make([]string, 100)
			for i := range keys {
				keys[i] = fmt.Sprint("key-", i)
			}
			i := 0
			for b.Loop() {
				if err := s.Set("ns", keys[i%len(keys)], "value"); err != nil {
					b.Fatal(err)
				}
				i++
			}
			// Every watcher still gets what it is owed, however far behind.
			b.StopTimer()
			mustSet(b, s, "ns", "marker", "m")
			received := make(chan struct{})
			go func() { done.Wait(); close(received) }()
			select {
			case <-received:
			case <-time.After(time.Minute):
				b.Fatalf("a minute after the last Set, not every one of %d watchers had received it", n)
			}
		})
	}
}
