package serve

import (
	"io"
	"net"
	"sync"
	"time"
)

// maxRejecting bounds the connections being answered 503 at once; past
// it, an excess connection is closed without an answer.
const maxRejecting = 64

// rejectWait bounds how long answering an excess connection takes.
const rejectWait = time.Second

// busyAnswer is what an excess connection gets: a complete HTTP/1.1
// answer, written before the request is read.
const busyAnswer = "HTTP/1.1 503 Service Unavailable\r\n" +
	"Content-Type: application/json\r\n" +
	"Retry-After: 1\r\n" +
	"Connection: close\r\n" +
	"Content-Length: 61\r\n" +
	"\r\n" +
	`{"error":"too many connections: the server's cap is reached"}`

// limitListener is a listener that holds at most its capacity of
// connections open: each one it returns takes a slot until closed, and a
// connection accepted while every slot is taken is answered 503 and
// closed.
type limitListener struct {
	net.Listener
	slots     chan struct{} // a token per open connection
	rejecting chan struct{} // a token per excess connection being answered
}

func newLimitListener(l net.Listener, n int) *limitListener {
	return &limitListener{Listener: l, slots: make(chan struct{}, n), rejecting: make(chan struct{}, maxRejecting)}
}

// Accept returns the next connection for which a slot is free.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
		default:
			l.reject(c)
		}
	}
}

// reject answers c 503 and closes it, in a goroutine of its own that ends
// within rejectWait, or closes it at once when maxRejecting are being
// answered.
func (l *limitListener) reject(c net.Conn) {
	select {
	case l.rejecting <- struct{}{}:
	default:
		c.Close()
		return
	}
	go func() {
		defer func() { <-l.rejecting }()
		defer c.Close()
		c.SetDeadline(time.Now().Add(rejectWait))
		if _, err := io.WriteString(c, busyAnswer); err != nil {
			return
		}
		// Half-close, then read what the client sent until it closes:
		// closing with unread data would reset the connection, and the
		// client might lose the answer.
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}()
}

// limitConn is a connection that frees its slot when first closed.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
