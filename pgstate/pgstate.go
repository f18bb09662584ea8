package pgstate

import (
	"context"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/pgstate/internal/pgdb"
)

// DefaultPingInterval is how often the listener checks its connection
// when [opstate.Options.SyncInterval] is zero.
const DefaultPingInterval = pgdb.DefaultPingInterval

// Open connects to the PostgreSQL database of connString, migrates its
// schema (see the package documentation), and returns a Store over it.
//
// connString is a URL (postgres://user@host:5432/db?sslmode=disable) or a
// key=value DSN, as libpq reads them; an empty one reads libpq's PG*
// environment variables. The search_path it sets, if any, picks the
// schema. Errors name the cause (a server that is down, refused
// authentication, a malformed connection string) and never the password.
// ctx bounds the connection and the migration only.
//
// Open fails with [ErrTriggerDisabled] while a trigger that notifies
// changes is disabled, naming the SQL that turns it back on; it re-creates
// one that is missing.
//
// opts means what it means for [opstate.Open], except:
//   - SyncInterval is how often the Store's listener checks its
//     connection and the triggers (see the package documentation), and
//     how long it waits for the answer: a connection that died silently
//     is noticed within twice it, one closed by the server or the network
//     at once, a trigger turned off within it. Zero means
//     DefaultPingInterval (1s); a negative value turns listening off, for
//     a Store that is the database's only writer (which then opens
//     whatever the triggers' state).
//   - BusyTimeout is PostgreSQL's lock_timeout: how long a write waits for
//     a row another transaction holds before failing with
//     [opstate.ErrBusy].
//   - Actor names who the Store's writes, and the expiries its sweeps
//     delete, are recorded as in history (see "History" in the package
//     documentation).
//   - Durability, Fdatasync and VerifyOnOpen mean nothing here (pgstate
//     leaves modernc.org/sqlite's switch alone): a commit is as
//     durable as the server's synchronous_commit makes it, and the server
//     checks its own data.
func Open(ctx context.Context, connString string, opts opstate.Options) (*opstate.Store, error) {
	ping := opts.SyncInterval
	if ping == 0 {
		ping = DefaultPingInterval
	}
	clock := opts.Clock
	if clock == nil {
		clock = time.Now
	}
	db, err := pgdb.Open(ctx, connString, pgdb.Options{
		BusyTimeout:  opts.BusyTimeout,
		Clock:        clock,
		PingInterval: ping,
		Actor:        sweepActor(opts.Actor),
	})
	if err != nil {
		return nil, err
	}
	opts.SyncInterval = ping
	return opstate.OpenBackend(db, opts)
}
