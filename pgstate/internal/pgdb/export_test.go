package pgdb

import (
	"context"
	"net"
)

// WithDial returns opts with the pool's dialer replaced by dial.
func WithDial(opts Options, dial func(ctx context.Context, network, addr string) (net.Conn, error)) Options {
	opts.dial = dial
	return opts
}
