package pgdb_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	"github.com/d8da9184/opstate/pgstate/internal/pgdb"
	"github.com/d8da9184/opstate/storage"
)

// countingConn counts the writes to the server of its connection.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestApplyOneRoundTrip counts the writes to the server of a batch of
// every kind of write (a conditional write that fails reads its row too):
// once the statements are prepared, the whole batch, its transaction
// included, goes in one write, which is one round trip.
func TestApplyOneRoundTrip(t *testing.T) {
	dsn, raw := server(t)
	var writes atomic.Int64
	var d net.Dialer
	opts := pgdb.WithDial(pgdb.Options{MaxConns: 1}, func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{Conn: c, writes: &writes}, nil
	})
	db := openDSN(t, dsn, opts)
	rawPut(t, raw, "ns", "held", "v", 0)
	now := localNow()
	batch := func() []storage.Write {
		return []storage.Write{
			putW("ns", "a", "1", 0, now),
			{Kind: storage.Delete, Namespace: "ns", Key: "b"},
			{Kind: storage.DeleteNamespace, Namespace: "gone"},
			{Kind: storage.PutIfAbsent, Namespace: "ns", Key: "held", Value: "x"},
			{Kind: storage.Swap, Namespace: "ns", Key: "held", Old: "no", Value: "x"},
			{Kind: storage.DeleteIf, Namespace: "ns", Key: "held", Old: "no"},
		}
	}
	apply(t, db, now, batch()...) // prepares the statements
	for range 3 {
		before := writes.Load()
		ws := batch()
		res := apply(t, db, now, ws...)
		if n := writes.Load() - before; n != 1 {
			t.Errorf("a batch of %d writes took %d writes to the server; want 1", len(ws), n)
		}
		if !res[3].Found || res[3].Held.Value != "v" {
			t.Errorf("PutIfAbsent in the batch: Found %v, Held %+v; want v", res[3].Found, res[3].Held)
		}
	}
}
