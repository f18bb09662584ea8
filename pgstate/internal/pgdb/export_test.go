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

// Classify is classify.
var Classify = classify

// SchemaVersion is the schema version this package migrates to.
var SchemaVersion = len(migrations)

// Migrations returns the SQL of the migrations, in order.
func Migrations() []string { return migrations }

// TriggerStateSQL is the query a listener checks the triggers with.
const TriggerStateSQL = triggerStateSQL

// OriginSQL and ApplyOriginSQL are the first statements of a sweep's and
// of an Apply's batch.
const (
	OriginSQL      = originSQL
	ApplyOriginSQL = applyOriginSQL
)
