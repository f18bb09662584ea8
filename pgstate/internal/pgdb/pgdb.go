package pgdb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/d8da9184/opstate/storage"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultBusyTimeout is the BusyTimeout of zero Options.
const DefaultBusyTimeout = storage.DefaultBusyTimeout

// DefaultPingInterval is the PingInterval of zero Options.
const DefaultPingInterval = time.Second

// Options configures [Open]. The zero value is valid.
type Options struct {
	// BusyTimeout is how long a statement waits for a row or table lock
	// before failing with storage.ErrBusy (PostgreSQL's lock_timeout);
	// default DefaultBusyTimeout (5s, as on SQLite).
	BusyTimeout time.Duration
	// MaxConns bounds the pool; default pgxpool's.
	MaxConns int32
	// Clock is the caller's clock, in which the DB reports expiries (see
	// "Clock" in doc.go); default time.Now.
	Clock func() time.Time
	// CallTimeout is how long a call waits for the server to answer
	// before it fails: a connection that died silently (a partition)
	// would otherwise hold it until the kernel gives up on TCP, many
	// minutes later. Default BusyTimeout plus 10 seconds, so that a call
	// waiting its BusyTimeout for a lock still gets its ErrBusy.
	CallTimeout time.Duration
	// PingInterval is how often a listener checks its connection and the
	// triggers, and how long it waits for the answer: a listener notices
	// a dead connection within twice it, a trigger turned off within it.
	// Default DefaultPingInterval.
	PingInterval time.Duration
	// Actor is who the rows the DB's sweeps delete are recorded as
	// deleted by, in the history of their namespaces; a write's actor is
	// its own (storage.Write.Actor). "" records none, as for psql.
	Actor string

	// dial, when set, replaces the pool's dialer (export_test.go).
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// DB is an open PostgreSQL database. Its methods are safe for concurrent
// use.
type DB struct {
	pool *pgxpool.Pool
	// channel is the LISTEN channel of the schema the pool works in.
	channel string
	// origin names this DB's transactions in their notifications, so
	// that its listeners skip them (notify.go).
	origin string
	clock  func() time.Time
	ping   time.Duration
	call   time.Duration // Options.CallTimeout
	actor  string        // Options.Actor
	// idle is the server's idle_session_timeout, as a time.Duration, as
	// a connection of the DB last read it; 0 for none (idle.go).
	idle atomic.Int64
	// triggersOff: the last check of the triggers found one off
	// (listener.go).
	triggersOff atomic.Bool
}

// Open connects to the database of connString (a URL or key=value DSN;
// empty reads libpq's PG* environment variables) and migrates its schema.
func Open(ctx context.Context, connString string, opts Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		// pgconn's parse errors never print the password.
		return nil, fmt.Errorf("opstate: open postgres: %w", err)
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = DefaultBusyTimeout
	}
	ms := (opts.BusyTimeout + time.Millisecond - 1) / time.Millisecond
	cfg.ConnConfig.RuntimeParams["lock_timeout"] = fmt.Sprint(int64(ms))
	if opts.dial != nil {
		cfg.ConnConfig.DialFunc = opts.dial
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = DefaultPingInterval
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = opts.BusyTimeout + 10*time.Second
	}
	if !storable(opts.Actor) {
		return nil, fmt.Errorf("opstate: open postgres: %w: actor %q", ErrInvalidText, opts.Actor)
	}
	db := &DB{origin: newOrigin(), clock: opts.Clock, ping: opts.PingInterval, call: opts.CallTimeout, actor: opts.Actor}
	cfg.ShouldPing = db.shouldPing
	db.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opstate: open postgres: %w", err)
	}
	if err := db.start(ctx); err != nil {
		db.pool.Close()
		return nil, fmt.Errorf("opstate: open postgres: %w", classify(err))
	}
	return db, nil
}

// start migrates the schema and reads what the DB needs of the server.
func (db *DB) start(ctx context.Context) error {
	if err := migrate(ctx, db.pool); err != nil {
		return err
	}
	if err := db.pool.QueryRow(ctx, `SELECT `+channelSQL("current_schema()")).Scan(&db.channel); err != nil {
		return err
	}
	_, err := db.readIdle(ctx, db.pool)
	return err
}

// Close closes every connection of the pool.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// bound returns ctx, ended after the DB's CallTimeout, for one call.
func (db *DB) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, db.call)
}

// timedOut names a call's deadline as the cause of err when it was.
func (db *DB) timedOut(ctx context.Context, err error) error {
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("opstate: no answer from PostgreSQL within %v (Options.CallTimeout): %w", db.call, err)
	}
	return err
}

// storable reports whether s can be stored in a text column.
func storable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// expiryMillis is expires_at in Unix milliseconds, NULL for none; the
// epoch itself reads as -1, as in persist, and a hand-written infinity as
// never or as the earliest time.
const expiryMillis = `CASE WHEN expires_at IS NULL OR expires_at = 'infinity' THEN NULL
	WHEN expires_at = '-infinity' THEN -62167219200000
	WHEN expires_at = 'epoch' THEN -1
	ELSE floor(extract(epoch FROM expires_at) * 1000)::bigint END`

// live is true of a row that has not expired by the server's clock.
const live = `(expires_at IS NULL OR expires_at > now())`

// serverMillis is the server's now() in Unix milliseconds.
const serverMillis = `floor(extract(epoch FROM now()) * 1000)::bigint`

// Get returns the row of ns and key, expired or not, and whether it
// exists; its ExpiresAt is an instant of the DB's clock (see local).
func (db *DB) Get(ctx context.Context, ns, key string) (storage.Row, bool, error) {
	if !storable(ns) || !storable(key) {
		return storage.Row{}, false, nil
	}
	ctx, cancel := db.bound(ctx)
	defer cancel()
	var r storage.Row
	var exp *int64
	var srv int64
	err := db.pool.QueryRow(ctx, `SELECT value, `+expiryMillis+`, `+serverMillis+` FROM operational_state WHERE namespace = $1 AND key = $2`, ns, key).Scan(&r.Value, &exp, &srv)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.Row{}, false, nil
	}
	if err != nil {
		return storage.Row{}, false, db.timedOut(ctx, classify(err))
	}
	r.ExpiresAt = db.local(exp, srv)
	return r, true, nil
}

// local turns an expiry exp read when the server's clock read srv (both
// Unix milliseconds) into an instant of the DB's clock: as far from its
// now as exp was from the server's, so that the caller's clock, however
// skewed, sees the key die when the server does, give or take the
// latency of the read. nil, no expiry, is 0; an instant that lands on 0,
// which would mean none, is moved 1 ms earlier.
func (db *DB) local(exp *int64, srv int64) int64 {
	if exp == nil {
		return 0
	}
	l := db.clock().UnixMilli() + (*exp - srv)
	if l == 0 {
		l = -1
	}
	return l
}

// List returns every row of ns live by the server's clock, keyed by key.
// now is not used: the server judges.
func (db *DB) List(ctx context.Context, ns string, now int64) (map[string]string, error) {
	ctx, cancel := db.bound(ctx)
	defer cancel()
	m, err := db.list(ctx, ns)
	return m, db.timedOut(ctx, err)
}

func (db *DB) list(ctx context.Context, ns string) (map[string]string, error) {
	out := make(map[string]string)
	if !storable(ns) {
		return out, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT key, value FROM operational_state WHERE namespace = $1 AND `+live, ns)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, classify(err)
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		return nil, classify(err)
	}
	return out, nil
}

// Namespaces returns every namespace with keys live by the server's
// clock, sorted by name as bytes. now is not used: the server judges.
func (db *DB) Namespaces(ctx context.Context, now int64) ([]storage.NamespaceCount, error) {
	ctx, cancel := db.bound(ctx)
	defer cancel()
	ncs, err := db.namespaces(ctx)
	return ncs, db.timedOut(ctx, err)
}

func (db *DB) namespaces(ctx context.Context) ([]storage.NamespaceCount, error) {
	rows, err := db.pool.Query(ctx, `SELECT namespace, count(*) FROM operational_state WHERE `+live+`
		GROUP BY namespace ORDER BY namespace COLLATE "C"`)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []storage.NamespaceCount
	for rows.Next() {
		var nc storage.NamespaceCount
		if err := rows.Scan(&nc.Namespace, &nc.Live); err != nil {
			return nil, classify(err)
		}
		out = append(out, nc)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(err)
	}
	return out, nil
}
