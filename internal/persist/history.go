package persist

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"math"

	"github.com/d8da9184/opstate/storage"
)

// The DB is a [storage.Historian]: the history is kept by the triggers of
// history_schema.go; these methods set which namespaces keep it, read it
// and prune it.

// Change is one recorded change; see storage's.
type Change = storage.Change

// The ops of a [Change]; see storage's.
const (
	ChangeSet    = storage.ChangeSet
	ChangeDelete = storage.ChangeDelete
	ChangeExpire = storage.ChangeExpire
)

var _ storage.Historian = (*DB)(nil)

// millis is the stored timestamp col as Unix milliseconds, NULL for NULL
// or text that is no time (see expiryMillis).
func millis(col string) string {
	return `CAST(round((julianday(` + col + `) - 2440587.5) * 86400000) AS INTEGER)`
}

// historyColumns are what History reads of a row of the history.
var historyColumns = `seq, ` + millis("at") + `, namespace, key, op, before, ` + millis("before_expires_at") +
	`, after, ` + millis("after_expires_at") + `, actor`

// historyKeySQL reads the changes of the key ?2 of namespace ?1 before
// seq ?3, newest first, at most ?4; historyNamespaceSQL those of every key.
var (
	historyKeySQL = `SELECT ` + historyColumns + ` FROM operational_state_history
		WHERE namespace = ?1 AND key = ?2 AND seq < ?3 ORDER BY seq DESC LIMIT ?4`
	historyNamespaceSQL = `SELECT ` + historyColumns + ` FROM operational_state_history
		WHERE namespace = ?1 AND seq < ?3 AND ?2 = '' ORDER BY seq DESC LIMIT ?4`
)

// The statements of SetHistory.
const (
	setKeepSQL = `INSERT INTO operational_state_history_keep (namespace, keep) VALUES (?1, ?2)
		ON CONFLICT (namespace) DO UPDATE SET keep = excluded.keep`
	deleteKeepSQL = `DELETE FROM operational_state_history_keep WHERE namespace = ?1`
)

// The history has no index but its seq (history_schema.go), so that a
// recorded change costs one page more than a write without: what
// PruneHistory deletes is found on read connections (prune.go), where a
// scan holds no write up, and the writing transaction deletes changes by
// seq alone.
// What PruneHistory deletes, in the writing transaction: the changes of
// namespace ?1 whose seqs the JSON array ?2 lists, if the namespace still
// keeps ?3 changes (a keep raised since they were read would keep them),
// or none when ?3 is 0. The newest change of the history is not deleted
// but emptied, left to no namespace (”), which no Store reads: a seq is
// the largest so far plus one, and must never be given again.
const (
	pruneSQLHistory = `DELETE FROM operational_state_history
	WHERE seq IN (SELECT value FROM json_each(?2)) AND namespace = ?1
	AND ifnull((SELECT keep FROM operational_state_history_keep WHERE namespace = ?1), 0) = ?3
	AND seq < (SELECT max(seq) FROM operational_state_history)`
	emptySQLHistory = `UPDATE operational_state_history SET namespace = '', key = '',
	before = NULL, before_expires_at = NULL, after = NULL, after_expires_at = NULL, actor = NULL
	WHERE seq = (SELECT max(seq) FROM operational_state_history)
	AND seq IN (SELECT value FROM json_each(?2)) AND namespace = ?1
	AND ifnull((SELECT keep FROM operational_state_history_keep WHERE namespace = ?1), 0) = ?3`
)

// SetHistory makes namespace keep its last keep changes, from the next
// write on, whoever makes it; keep 0 turns its history off, and the
// changes it kept are deleted by the next PruneHistory calls. A negative
// keep is an error. ctx ends a wait for another connection's lock, as it
// ends [DB.Apply]'s.
func (db *DB) SetHistory(ctx context.Context, namespace string, keep int) error {
	if keep < 0 {
		return fmt.Errorf("opstate: history of %q: negative keep %d", namespace, keep)
	}
	return db.writeStmts(ctx, func(wc *writeConn) error {
		if keep == 0 {
			_, err := wc.exec(context.Background(), wc.deleteKeep, namespace)
			return err
		}
		_, err := wc.exec(context.Background(), wc.setKeep, namespace, int64(keep))
		return err
	})
}

// writeStmts runs f, which runs autocommit statements on the write
// connection, once nothing else writes through it, retrying it while
// another connection holds the lock; f must be safe to run again after
// failing with SQLITE_BUSY.
func (db *DB) writeStmts(ctx context.Context, f func(wc *writeConn) error) error {
	if err := db.guard.beforeWrite(); err != nil {
		return err
	}
	db.waitCheckpoint()
	db.wmu.Lock()
	defer db.wmu.Unlock()
	err := db.w.Raw(func(dc any) error {
		wc, err := db.writeConnLocked(dc)
		if err != nil {
			return err
		}
		defer wc.loggedLocked(db)
		return db.waitLock(ctx, func() error { return f(wc) })
	})
	if err == nil {
		err = db.guard.afterCommit()
	}
	return db.guard.explain(db.classify(err))
}

// HistoryKeeps returns every namespace that keeps history, with its keep.
func (db *DB) HistoryKeeps(ctx context.Context) (map[string]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	defer db.endRead(db.beginRead())
	rows, err := db.pool.QueryContext(context.Background(), `SELECT namespace, keep FROM operational_state_history_keep`)
	if err != nil {
		return nil, db.classify(err)
	}
	defer rows.Close()
	out := make(map[string]int)
	for rows.Next() {
		var ns sql.NullString
		var keep int64
		if err := rows.Scan(&ns, &keep); err != nil {
			return nil, db.classify(err)
		}
		if ns.Valid {
			out[ns.String] = int(min(keep, math.MaxInt32))
		}
	}
	return out, db.classify(rows.Err())
}

// History returns at most limit recorded changes of namespace, newest
// first, with Seq below before (0: from the newest); of key alone unless
// key is "". A limit of 0 or less returns none.
func (db *DB) History(ctx context.Context, namespace, key string, before int64, limit int) ([]Change, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	if before <= 0 {
		before = math.MaxInt64
	}
	q := historyKeySQL
	if key == "" {
		q = historyNamespaceSQL
	}
	defer db.endRead(db.beginRead())
	rows, err := db.pool.QueryContext(context.Background(), q, namespace, key, before, int64(limit))
	if err != nil {
		return nil, db.classify(err)
	}
	defer rows.Close()
	var out []Change
	for rows.Next() {
		var c Change
		var op string
		var at, beforeExp, afterExp sql.NullInt64
		var ns, k, bef, aft, actor any
		if err := rows.Scan(&c.Seq, &at, &ns, &k, &op, &bef, &beforeExp, &aft, &afterExp, &actor); err != nil {
			return nil, db.classify(err)
		}
		c.Time = at.Int64
		c.Namespace, c.Key = text(ns), text(k)
		switch op {
		case "set":
			c.Op = ChangeSet
		case "delete":
			c.Op = ChangeDelete
		case "expire":
			c.Op = ChangeExpire
		default:
			return nil, fmt.Errorf("opstate: change %d of the history has the op %q", c.Seq, op)
		}
		c.Existed = bef != nil
		c.Before, c.BeforeExpiresAt = text(bef), parseExpiry(beforeExp)
		c.After, c.ExpiresAt = text(aft), parseExpiry(afterExp)
		c.Actor = text(actor)
		out = append(out, c)
	}
	return out, db.classify(rows.Err())
}

// useActor makes the history rows of the write connection's next
// statements name actor ("": none), and says that they are no sweep's,
// unless that is what the connection's TEMP table already says.
func (wc *writeConn) useActor(ctx context.Context, actor string) error {
	if wc.actorSet && wc.actor == actor {
		return nil
	}
	return wc.setWriter(ctx, actor, false)
}

// setWriter sets the actor and the sweeping flag of the write
// connection's history rows. Only (actor, not sweeping) is remembered: a
// sweep's setting is undone by the next useActor.
func (wc *writeConn) setWriter(ctx context.Context, actor string, sweeping bool) error {
	wc.actorSet = false
	var a driver.Value
	if actor != "" {
		a = actor
	}
	var sw int64
	if sweeping {
		sw = 1
	}
	if _, err := wc.exec(ctx, wc.setWriterActor, a, sw); err != nil {
		return err
	}
	wc.actor, wc.actorSet = actor, !sweeping
	return nil
}
