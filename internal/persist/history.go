package persist

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
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
// PruneHistory deletes is found on a read connection, where a scan holds
// no write up, and the writing transaction deletes changes by seq alone.
//
// Read: every namespace that keeps history, with its keep; the seq of a
// namespace's newest change beyond its keep ?2 (none: it has no more);
// the namespaces with changes that keep none; at most ?3 of the oldest
// changes of namespace ?1 up to seq ?2.
const (
	pruneKeepsSQL  = `SELECT namespace, keep FROM operational_state_history_keep`
	pruneCutoffSQL = `SELECT seq FROM operational_state_history WHERE namespace = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2`
	pruneOffSQL    = `SELECT DISTINCT namespace FROM operational_state_history
		WHERE namespace <> '' AND namespace NOT IN (SELECT namespace FROM operational_state_history_keep)`
	pruneSeqsSQL = `SELECT seq FROM operational_state_history WHERE seq <= ?2 AND namespace = ?1 ORDER BY seq LIMIT ?3`
)

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

// PruneHistory deletes at most limit changes beyond their namespace's
// keep, or of a namespace that keeps none, oldest first, in one
// transaction, and returns how many it deleted. What to delete is found on
// a read connection first, so that the transaction, which holds the
// DB's writes off, only deletes changes by their seq. The newest change of
// the history is emptied instead, and left to no namespace. ctx ends a wait for another
// connection's lock, as it ends [DB.Apply]'s.
func (db *DB) PruneHistory(ctx context.Context, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	targets, err := db.pruneTargets(ctx, limit)
	if err != nil || len(targets) == 0 {
		return 0, err
	}
	var n int64
	err = db.writeStmts(ctx, func(wc *writeConn) error {
		n = 0
		bg := context.Background()
		if _, err := wc.exec(bg, wc.begin); err != nil {
			return err
		}
		err := func() error {
			for _, t := range targets {
				for _, st := range []driver.Stmt{wc.pruneHistory, wc.emptyHistory} {
					d, err := wc.exec(bg, st, t.namespace, t.seqs, t.keep)
					if err != nil {
						return err
					}
					n += d
				}
			}
			return nil
		}()
		if err == nil {
			_, err = wc.exec(bg, wc.commit)
		}
		if err != nil {
			wc.exec(bg, wc.rollback)
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	return int(n), nil
}

// pruneTarget is what PruneHistory deletes of one namespace.
type pruneTarget struct {
	namespace any    // as stored: a namespace written by hand may be no text
	keep      int64  // its keep when read; 0: none
	seqs      string // the seqs of the changes to delete, as a JSON array
}

// pruneTargets reads, on a read connection, at most limit changes to
// delete, oldest first by namespace: those beyond their namespace's keep,
// then those of namespaces that keep none.
func (db *DB) pruneTargets(ctx context.Context, limit int) ([]pruneTarget, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	defer db.endRead(db.beginRead())
	bg := context.Background()
	type namespaceKeep struct {
		namespace any
		keep      int64
	}
	var spaces []namespaceKeep
	for _, q := range []string{pruneKeepsSQL, pruneOffSQL} {
		rows, err := db.pool.QueryContext(bg, q)
		if err != nil {
			return nil, db.classify(err)
		}
		for rows.Next() {
			var nk namespaceKeep
			dest := []any{&nk.namespace, &nk.keep}
			if q == pruneOffSQL {
				dest = dest[:1]
			}
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return nil, db.classify(err)
			}
			spaces = append(spaces, nk)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, db.classify(err)
		}
	}
	var targets []pruneTarget
	for _, nk := range spaces {
		cutoff := int64(math.MaxInt64)
		if nk.keep > 0 {
			err := db.pool.QueryRowContext(bg, pruneCutoffSQL, nk.namespace, nk.keep).Scan(&cutoff)
			if errors.Is(err, sql.ErrNoRows) {
				continue // no more than keep changes
			}
			if err != nil {
				return nil, db.classify(err)
			}
		}
		rows, err := db.pool.QueryContext(bg, pruneSeqsSQL, nk.namespace, cutoff, int64(limit))
		if err != nil {
			return nil, db.classify(err)
		}
		var seqs []int64
		for rows.Next() {
			var seq int64
			if err := rows.Scan(&seq); err != nil {
				rows.Close()
				return nil, db.classify(err)
			}
			seqs = append(seqs, seq)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, db.classify(err)
		}
		if len(seqs) > 0 {
			list, _ := json.Marshal(seqs)
			targets = append(targets, pruneTarget{namespace: nk.namespace, keep: nk.keep, seqs: string(list)})
			if limit -= len(seqs); limit == 0 {
				break
			}
		}
	}
	return targets, nil
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
