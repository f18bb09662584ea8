package pgdb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/d8da9184/opstate/storage"
	"github.com/jackc/pgx/v5"
)

// listenerCheckSQL is triggerStateSQL as a listener runs it: the comment
// tells its connection apart in pg_stat_activity.
const listenerCheckSQL = "-- opstate listener: trigger check\n" + triggerStateSQL

// Listener receives the change notifications of a DB's schema on a
// connection of its own, skipping the DB's own; it implements
// storage.Listener. It is not safe for concurrent use.
type Listener struct {
	conn   *pgx.Conn
	origin string
	own    string        // how the payloads of the DB's own changes begin
	ping   time.Duration // how long a check waits for its answer
	every  time.Duration // how often the connection and the triggers are checked (checkEvery)
	due    time.Time     // when the next check is due
	seen   string        // the triggers' fingerprint at the last check
	off    *atomic.Bool  // the DB's triggersOff
}

// Listen opens a dedicated connection, with the pool's configuration, that
// LISTENs to every change of the DB's schema. Notifications are lossy:
// when the connection drops, the caller must assume anything changed.
// Listen fails with [ErrTriggerDisabled] while a trigger that notifies
// changes is missing or does not fire always.
func (db *DB) Listen(ctx context.Context) (storage.Listener, error) {
	return db.listen(ctx)
}

// listen is Listen, returning the concrete type.
func (db *DB) listen(ctx context.Context) (*Listener, error) {
	ctx, cancel := db.bound(ctx)
	defer cancel()
	if db.triggersOff.Load() {
		// While a trigger is off, the Store calls Listen again and
		// again: the triggers are read on the pool first, since a query
		// costs the server less than a connection. (Only then: when the
		// network is what failed, the pool's connections are the reads'.)
		st, err := readTriggers(ctx, db.pool, triggerStateSQL)
		if err != nil {
			return nil, fmt.Errorf("opstate: listen: %w", db.timedOut(ctx, classify(err)))
		}
		if err := st.err(); err != nil {
			return nil, err
		}
	}
	conn, err := pgx.ConnectConfig(ctx, db.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("opstate: listen: %w", err)
	}
	l := &Listener{conn: conn, origin: db.origin, own: `{"o":"` + db.origin + `",`, ping: db.ping, off: &db.triggersOff}
	if err := l.start(ctx, db); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return l, nil
}

// start LISTENs, learns the server's idle_session_timeout, and checks the
// triggers once more: every change to them from then on is seen by a
// later check.
func (l *Listener) start(ctx context.Context, db *DB) error {
	if _, err := l.conn.Exec(ctx, "LISTEN "+pgx.Identifier{db.channel}.Sanitize()); err != nil {
		return fmt.Errorf("opstate: listen: %w", classify(err))
	}
	idle, err := db.readIdle(ctx, l.conn)
	if err != nil {
		return fmt.Errorf("opstate: listen: %w", classify(err))
	}
	l.every = checkEvery(l.ping, idle)
	// Bounded by Listen's CallTimeout, not the ping interval: a new
	// backend's first catalog read may take longer.
	_, err = l.check(ctx, 0)
	return err
}

// Next waits for the changes of others and reports those of one
// notification. Every check interval (the ping interval, or less: see
// checkEvery) it checks the connection and the triggers with one query:
// a connection that does not answer within the ping interval, or a
// trigger found off, is reported as an error, and triggers changed since
// the last check (turned off and on again, re-created by a restore) as a
// Reset, since changes may have been made while they did not fire. A dead
// connection is thus noticed within twice the ping interval, one that the
// server or the network closed at once.
func (l *Listener) Next(ctx context.Context) (storage.Changes, error) {
	for {
		cs, err := l.wait(ctx)
		if err != nil {
			return storage.Changes{}, err
		}
		if ch, ok := l.report(cs); ok {
			return ch, nil
		}
	}
}

// wait returns the changes of the next notification, or of a check that
// found the triggers changed, checking when a check is due.
func (l *Listener) wait(ctx context.Context) ([]Change, error) {
	for {
		if !time.Now().Before(l.due) {
			changed, err := l.check(ctx, l.ping)
			if err != nil {
				return nil, err
			}
			if changed {
				return []Change{{Scope: ScopeAll}}, nil
			}
		}
		wctx, cancel := context.WithDeadline(ctx, l.due)
		n, err := l.conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil && strings.HasPrefix(n.Payload, l.own):
			continue // the DB's own: skipped before the JSON is read
		case err == nil:
			return decode(n.Payload), nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case !errors.Is(err, context.DeadlineExceeded) || l.conn.IsClosed():
			return nil, fmt.Errorf("opstate: change stream: %w", err)
		}
	}
}

// check reads the triggers on the listener's connection, which shows the
// connection alive too, and schedules the next check. It fails when no
// answer comes within limit (if not 0), or a trigger is off
// (ErrTriggerDisabled); changed reports that the triggers are not those
// of the last check.
func (l *Listener) check(ctx context.Context, limit time.Duration) (changed bool, err error) {
	cctx, cancel := ctx, context.CancelFunc(func() {})
	if limit > 0 {
		cctx, cancel = context.WithTimeout(ctx, limit)
	}
	st, err := readTriggers(cctx, l.conn, listenerCheckSQL)
	cancel()
	l.due = time.Now().Add(l.every)
	switch {
	case err != nil && ctx.Err() != nil:
		return false, ctx.Err()
	case err != nil && limit > 0 && errors.Is(cctx.Err(), context.DeadlineExceeded):
		return false, fmt.Errorf("opstate: change stream: no answer to a check within %v: %w", limit, err)
	case err != nil:
		return false, fmt.Errorf("opstate: change stream: %w", classify(err))
	}
	if err := st.err(); err != nil {
		l.off.Store(true)
		return false, err
	}
	l.off.Store(false)
	fp := st.fingerprint()
	changed = l.seen != "" && fp != l.seen
	l.seen = fp
	return changed, nil
}

// report turns notifications into the Changes they report, less the
// DB's own, and says whether any was left.
func (l *Listener) report(cs []Change) (storage.Changes, bool) {
	var ch storage.Changes
	seen := make(map[storage.Key]bool)
	spaces := make(map[string]bool)
	for _, c := range cs {
		if c.Origin == l.origin {
			continue
		}
		ch.Foreign = true
		switch c.Scope {
		case ScopeAll:
			return storage.Changes{Reset: true, Foreign: true}, true
		case ScopeNamespace:
			if !spaces[c.Namespace] {
				spaces[c.Namespace] = true
				ch.Namespaces = append(ch.Namespaces, c.Namespace)
			}
			continue
		}
		k := storage.Key{Namespace: c.Namespace, Key: c.Key}
		if !seen[k] {
			seen[k] = true
			ch.Keys = append(ch.Keys, k)
		}
		if c.Expired {
			if ch.Expired == nil {
				ch.Expired = make(map[storage.Key]bool)
			}
			ch.Expired[k] = true
		} else {
			delete(ch.Expired, k)
		}
	}
	if len(spaces) > 0 { // a namespace's keys go with it
		keys := ch.Keys[:0]
		for _, k := range ch.Keys {
			if !spaces[k.Namespace] {
				keys = append(keys, k)
			} else {
				delete(ch.Expired, k)
			}
		}
		ch.Keys = keys
	}
	return ch, ch.Foreign
}

// Close closes the listener's connection, waiting at most a ping interval
// for the server to hear it.
func (l *Listener) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), l.ping)
	defer cancel()
	return l.conn.Close(ctx)
}
