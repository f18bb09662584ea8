package persist

import (
	"context"
	"time"

	"github.com/d8da9184/opstate/storage"
)

var (
	_ storage.Notifier = (*DB)(nil)
	_ storage.Poller   = (*poller)(nil)
)

// Listen returns the stream of what others commit to the database, read
// from its change log every [Options.PollInterval]: a [storage.Listener]
// that is also a [storage.Poller], so that a Store nobody reads can stop
// polling and check at once before its next read. A private database,
// which nobody else can write, and a DB opened without a PollInterval
// report nothing: their listener's Next waits for ctx alone.
func (db *DB) Listen(ctx context.Context) (storage.Listener, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if db.private || db.pollInterval <= 0 {
		return quiet{}, nil
	}
	return &poller{db: db, interval: db.pollInterval}, nil
}

// poller is the listener of a database others write: each Next waits an
// interval and reads the change log ([DB.Changes]).
type poller struct {
	db       *DB
	interval time.Duration
	t        *time.Timer
}

// Next waits the interval, then checks, and returns what it found, with
// Foreign false when nobody else committed: it returns after every check,
// so that its caller can tell how long it has polled for nothing.
func (p *poller) Next(ctx context.Context) (storage.Changes, error) {
	if p.t == nil {
		p.t = time.NewTimer(p.interval)
	} else {
		p.t.Reset(p.interval)
	}
	select {
	case <-ctx.Done():
		p.t.Stop()
		return storage.Changes{}, ctx.Err()
	case <-p.t.C:
	}
	return p.Poll(ctx)
}

// Poll checks at once. A check that fails is reported as a Reset (the
// change log cannot say what changed), after a warning to the Logger, and
// the stream goes on: the next check may succeed. It fails only when ctx
// has ended.
func (p *poller) Poll(ctx context.Context) (storage.Changes, error) {
	ch, err := p.db.Changes(ctx)
	switch {
	case err != nil && ctx.Err() != nil:
		return storage.Changes{}, ctx.Err()
	case err != nil:
		p.db.warn("opstate: checking for other writers failed; cache emptied", "err", err)
		return storage.Changes{Reset: true, Foreign: true}, nil
	}
	return ch, nil
}

// Close ends the stream; it holds nothing.
func (p *poller) Close() error {
	if p.t != nil {
		p.t.Stop()
	}
	return nil
}

// quiet is the listener of a database nobody else writes.
type quiet struct{}

func (quiet) Next(ctx context.Context) (storage.Changes, error) {
	<-ctx.Done()
	return storage.Changes{}, ctx.Err()
}

func (quiet) Close() error { return nil }
