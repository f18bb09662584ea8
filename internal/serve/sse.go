package serve

import (
	"bytes"
	"context"
	"net/http"
	"runtime"
	"time"

	"github.com/d8da9184/opstate"
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

// pump runs an event stream until the client goes (ctx ends), the Store
// closes the Watch's channel (end event "store closed") or the server
// shuts down (end event "server shutting down"), or a write fails or
// times out. Each event of ch goes to encode, which appends what to send
// for it, if anything, to b. Sends are paced (see pacer): once an event
// has come, the stream waits for its slot, then takes every event ch has
// ready, up to maxBurst bytes, and sends them in one write, from a buffer
// it holds only until then (Server.bursts). A heartbeat
// comment goes out whenever nothing was sent for Heartbeat.
func (s *Server) pump(ctx context.Context, st *stream, ch <-chan opstate.Event, encode func(b *bytes.Buffer, ev opstate.Event)) {
	beat := time.NewTimer(s.opts.Heartbeat)
	defer beat.Stop()
	var slot pace
	defer slot.stop()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				if ctx.Err() == nil {
					st.end(endStoreClosed)
				}
				return
			}
			b := s.bursts.Get().(*bytes.Buffer)
			b.Reset()
			encode(b, ev)
			if !s.awaitSlot(ctx, st, &slot) {
				return
			}
			n, open := burst(b, ch, encode)
			n++ // the event that began the burst
			s.pace.charge(n - slot.events)
			slot.events = n
			sent := b.Len() > 0
			if sent && st.send(b.Bytes()) != nil {
				return
			}
			if b.Cap() <= 2*maxBurst {
				s.bursts.Put(b)
			}
			if !open {
				if ctx.Err() == nil {
					st.end(endStoreClosed)
				}
				return
			}
			if !sent {
				continue
			}
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

// burst appends to b what the events ch has ready encode to, until b
// holds maxBurst bytes, and returns how many it took and whether ch is
// still open. The Watch's goroutine hands over one event at a time: when
// none is ready, burst yields once to let it put the next one ready
// before it stops.
func burst(b *bytes.Buffer, ch <-chan opstate.Event, encode func(b *bytes.Buffer, ev opstate.Event)) (n int, open bool) {
	for yielded := false; b.Len() < maxBurst; {
		select {
		case ev, ok := <-ch:
			if !ok {
				return n, false
			}
			encode(b, ev)
			n, yielded = n+1, false
			continue
		default:
		}
		if yielded {
			break
		}
		runtime.Gosched()
		yielded = true
	}
	return n, true
}

// pace is a stream's timer for the pacer's slots, made at its first
// wait, and the number of events its last send had, for which it reserves
// its next slot.
type pace struct {
	t      *time.Timer
	events int
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
	wait := s.pace.reserve(p.events)
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
