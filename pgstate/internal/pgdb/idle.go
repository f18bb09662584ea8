package pgdb

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// idleTimeoutSQL reads the session's idle_session_timeout in
// milliseconds: the server ends a session idle that long, outside a
// transaction. 0 for none, and on servers before PostgreSQL 14, which
// have no such setting.
const idleTimeoutSQL = `SELECT coalesce((SELECT setting::bigint FROM pg_settings WHERE name = 'idle_session_timeout'), 0)`

// readIdle reads idleTimeoutSQL on q into db.idle and returns it.
func (db *DB) readIdle(ctx context.Context, q querier) (time.Duration, error) {
	rows, err := q.Query(ctx, idleTimeoutSQL)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var ms int64
	for rows.Next() {
		if err := rows.Scan(&ms); err != nil {
			return 0, err
		}
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	d := time.Duration(ms) * time.Millisecond
	db.idle.Store(int64(d))
	return d, nil
}

// shouldPing is the pool's ShouldPing: as pgxpool's default, it pings a
// connection idle for more than a second before handing it out, and also
// one idle for half the server's idle_session_timeout, which the server
// may have ended meanwhile. A connection whose ping fails is replaced
// before any statement of the caller is sent on it.
func (db *DB) shouldPing(_ context.Context, p pgxpool.ShouldPingParams) bool {
	limit := time.Duration(db.idle.Load())
	return p.IdleDuration > time.Second || limit > 0 && p.IdleDuration >= limit/2
}

// checkEvery is how often a listener checks its connection: every ping
// interval, and within half the server's idle_session_timeout when that
// is shorter, so that the server never finds the connection idle long
// enough to end it.
func checkEvery(ping, idle time.Duration) time.Duration {
	if idle > 0 && idle/2 < ping {
		return max(idle/2, time.Millisecond)
	}
	return ping
}
