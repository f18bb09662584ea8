package serve

import (
	"context"
	"net/http"
	"time"
)

// Why an event stream ends, as its end event says.
const (
	endStoreClosed = "store closed"
	endShutdown    = "server shutting down"
)

// stream is one open Server-Sent Events answer.
type stream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration // for each write
}

// openStream opens an event stream on w: it takes a slot of MaxStreams
// (503 when none is free), calls watch, which starts what feeds the
// stream (its error answered as the Store's errors are), and sends the
// answer's headers and opening comment. done frees the slot. ok is false
// when it has answered the request instead.
func (s *Server) openStream(w http.ResponseWriter, watch func() error) (st *stream, done func(), ok bool) {
	if s.streams.Add(1) > int64(s.opts.MaxStreams) {
		s.streams.Add(-1)
		writeError(w, http.StatusServiceUnavailable, "too many event streams: the server's cap is reached")
		return nil, nil, false
	}
	done = func() { s.streams.Add(-1) }
	if err := watch(); err != nil {
		done()
		writeStoreError(w, err)
		return nil, nil, false
	}
	st = &stream{w: w, rc: http.NewResponseController(w), timeout: s.opts.WriteTimeout}
	// The request has no body, and the stream lives past ReadTimeout.
	// (net/http does not apply ReadTimeout once such a request is read;
	// the stream does not rely on it.) Each send sets its own write
	// deadline, past WriteTimeout's for the whole answer.
	st.rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: pass each event on at once
	w.WriteHeader(http.StatusOK)
	if err := st.send([]byte(": opstate event stream\n\n")); err != nil {
		done()
		return nil, nil, false
	}
	return st, done, true
}

// openFeed opens an event stream on w that follows the feed of ns: an
// openStream whose watch is the subscription. done frees the stream's
// slot and leaves the feed.
func (s *Server) openFeed(w http.ResponseWriter, ns string) (st *stream, f *feed, cur cursor, done func(), ok bool) {
	st, free, ok := s.openStream(w, func() (err error) {
		f, cur, err = s.feeds.subscribe(s.store, ns)
		return err
	})
	if !ok {
		if f != nil {
			s.feeds.unsubscribe(f)
		}
		return nil, nil, cursor{}, nil, false
	}
	return st, f, cur, func() { s.feeds.unsubscribe(f); free() }, true
}

// send writes b, one or more complete events or comments, and flushes
// it, within the write timeout: a client that does not read is cut off
// rather than waited for.
func (st *stream) send(b []byte) error {
	st.rc.SetWriteDeadline(time.Now().Add(st.timeout))
	if _, err := st.w.Write(b); err != nil {
		return err
	}
	return st.rc.Flush()
}

// end sends the end event, saying why the stream ends.
func (st *stream) end(reason string) {
	st.send([]byte(`event: end` + "\n" + `data: {"reason":"` + reason + `"}` + "\n\n"))
}

// follow runs an event stream of feed f from cur until the client goes
// (ctx ends), the Store closes (end event "store closed", after what the
// feed still owes the stream), the server shuts down (end event "server
// shutting down"), or a write fails or times out. take appends to a
// buffer what the stream sends for what cur is owed, advancing cur, and
// reports whether more is owed. Sends are paced (see pacer): once
// something is recorded, the stream waits for its slot, then sends all it
// is owed, up to maxBurst bytes, in one write, from a buffer it holds only
// until then (Server.bursts). A heartbeat comment goes out whenever
// nothing was sent for Heartbeat.
func (s *Server) follow(ctx context.Context, st *stream, f *feed, cur cursor, take func(*feed, *cursor, []byte) ([]byte, bool)) {
	beat := time.NewTimer(s.opts.Heartbeat)
	defer beat.Stop()
	var slot pace
	defer slot.stop()
	send := func() (more bool, err error) {
		bp := s.bursts.Get().(*[]byte)
		var b []byte
		b, more = take(f, &cur, (*bp)[:0])
		s.pace.charge(len(b) - slot.bytes)
		slot.bytes = len(b)
		if len(b) > 0 {
			err = st.send(b)
		}
		if cap(b) <= 2*maxBurst {
			*bp = b
			s.bursts.Put(bp)
		}
		return more, err
	}
	for {
		select {
		case <-f.wait(cur):
			for more := true; more; {
				if !s.awaitSlot(ctx, st, &slot) {
					return
				}
				var err error
				if more, err = send(); err != nil {
					return
				}
			}
		case <-f.closed:
			for more := true; more; {
				var err error
				if more, err = send(); err != nil {
					return
				}
			}
			st.end(endStoreClosed)
			return
		case <-beat.C:
			if st.send([]byte(": heartbeat\n\n")) != nil {
				return
			}
		case <-s.ending:
			st.end(endShutdown)
			return
		case <-ctx.Done():
			return
		}
		beat.Reset(s.opts.Heartbeat)
	}
}

// pace is a stream's timer for the pacer's slots, made at its first
// wait, and the bytes of its last send, for which it reserves its next
// slot.
type pace struct {
	t     *time.Timer
	bytes int
}

func (p *pace) stop() {
	if p.t != nil {
		p.t.Stop()
	}
}

// awaitSlot takes the stream's next slot of the pacer and waits for it.
// It returns false when the stream must end instead: the client went
// (ctx), or the server shuts down, and then it has sent the end event.
func (s *Server) awaitSlot(ctx context.Context, st *stream, p *pace) bool {
	wait := s.pace.reserve(p.bytes)
	if wait <= 0 {
		return true
	}
	if p.t == nil {
		p.t = time.NewTimer(wait)
	} else {
		p.t.Reset(wait)
	}
	select {
	case <-p.t.C:
		return true
	case <-s.ending:
		st.end(endShutdown)
		return false
	case <-ctx.Done():
		return false
	}
}
