package serve

import (
	"context"
	"sync"

	"github.com/d8da9184/opstate"
)

// flagWatch is the one [opstate.Store.Watch] of the flags namespace that
// a Server's OFREP event streams share while any is open. Such a stream
// tells its client only that a flag changed, never which: one Watch then
// serves them all, and a change costs the Store one watcher and the
// server one goroutine's wake, however many streams follow the flags.
type flagWatch struct {
	mu  sync.Mutex // guards cur
	cur *flagFeed  // the feed new streams join; nil while no stream is open
}

// flagFeed is one run of the shared Watch: from the first stream's
// subscribe to the last one's unsubscribe, or the Store's closing.
type flagFeed struct {
	subs int // streams subscribed; guarded by flagWatch.mu

	mu      sync.Mutex    // guards changed
	changed chan struct{} // closed, and replaced, at each change of a flag

	closed chan struct{} // closed when the Watch ended because the Store closed
	done   chan struct{} // closed when run has returned
	cancel context.CancelFunc
}

// subscribe joins the current feed, starting one (and its Watch) if there
// is none or if the Store closed under the last, and returns it with the
// channel closed at the next change: every change committed after
// subscribe returns closes it, or the channel that replaced it. Its error
// is the Watch's.
func (fw *flagWatch) subscribe(store *opstate.Store, ns string) (*flagFeed, <-chan struct{}, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if f := fw.cur; f != nil {
		select {
		case <-f.closed:
			fw.cur = nil // its streams end; new ones learn why from Watch
		default:
		}
	}
	if fw.cur == nil {
		ctx, cancel := context.WithCancel(context.Background())
		ch, err := store.Watch(ctx, ns)
		if err != nil {
			cancel()
			return nil, nil, err
		}
		f := &flagFeed{changed: make(chan struct{}), closed: make(chan struct{}), done: make(chan struct{}), cancel: cancel}
		go f.run(ctx, ch)
		fw.cur = f
	}
	fw.cur.subs++
	return fw.cur, fw.cur.next(), nil
}

// unsubscribe leaves f; the last stream to leave ends its Watch and waits
// for its goroutine.
func (fw *flagWatch) unsubscribe(f *flagFeed) {
	fw.mu.Lock()
	f.subs--
	last := f.subs == 0
	if last && fw.cur == f {
		fw.cur = nil
	}
	fw.mu.Unlock()
	if last {
		f.cancel()
		<-f.done
	}
}

// run turns the Watch's events into closings of changed until the Watch
// ends; an OpStale changes no flag.
func (f *flagFeed) run(ctx context.Context, ch <-chan opstate.Event) {
	defer close(f.done)
	for ev := range ch {
		if ev.Op == opstate.OpStale {
			continue
		}
		f.mu.Lock()
		close(f.changed)
		f.changed = make(chan struct{})
		f.mu.Unlock()
	}
	if ctx.Err() == nil {
		close(f.closed)
	}
}

// next returns the channel closed at the next change.
func (f *flagFeed) next() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}
