package pgdb_test

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/d8da9184/opstate/pgstate/internal/pgdb"
)

// TestListenWhileTriggerOff disables the notify trigger under a listener:
// its next check fails with ErrTriggerDisabled, within the ping interval;
// then Listen, called again and again as a Store does while it waits,
// fails the same way without opening a connection each time (it reads the
// triggers on the pool); once the trigger fires always again, Listen
// succeeds.
func TestListenWhileTriggerOff(t *testing.T) {
	dsn, raw := server(t)
	var dials atomic.Int64
	opts := pgdb.WithDial(pgdb.Options{PingInterval: 100 * time.Millisecond}, func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	})
	db := openDSN(t, dsn, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l := mustListen(t, ctx, db)
	rawExec(t, raw, `ALTER TABLE operational_state DISABLE TRIGGER operational_state_notify`)
	start := time.Now()
	_, err := l.Next(ctx)
	if !errors.Is(err, pgdb.ErrTriggerDisabled) {
		t.Fatalf("Next with the trigger disabled = %v; want ErrTriggerDisabled", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Next noticed the disabled trigger after %v; want within about the ping interval (100ms)", d)
	}
	before := dials.Load()
	for i := range 20 {
		if l, err := db.Listen(ctx); !errors.Is(err, pgdb.ErrTriggerDisabled) {
			if err == nil {
				l.Close()
			}
			t.Fatalf("Listen #%d with the trigger disabled = %v; want ErrTriggerDisabled", i, err)
		}
	}
	if d := dials.Load() - before; d > 1 {
		t.Errorf("20 refused Listens dialed %d connections; want at most 1 (the pool's)", d)
	}
	rawExec(t, raw, `ALTER TABLE operational_state ENABLE ALWAYS TRIGGER operational_state_notify`)
	mustListen(t, ctx, db)
}
