package pgdb

import (
	"context"
	"fmt"
	"math"

	"github.com/d8da9184/opstate/storage"
	"github.com/jackc/pgx/v5"
)

// The DB is a storage.Historian: the triggers of history_schema.go record
// the changes, and these methods set which namespaces keep them, read
// them and prune them.
var _ storage.Historian = (*DB)(nil)

// SetHistory makes ns keep its last keep changes (operational_state_history_keep);
// keep 0 turns its history off, and PruneHistory then deletes what it
// kept. It takes effect for every writer at once, psql's included: the
// triggers read the table in each write's transaction.
func (db *DB) SetHistory(ctx context.Context, ns string, keep int) error {
	switch {
	case keep < 0:
		return fmt.Errorf("opstate: history of %q: keep %d is negative", ns, keep)
	case keep > math.MaxInt32:
		return fmt.Errorf("opstate: history of %q: keep %d is over %d", ns, keep, math.MaxInt32)
	case !storable(ns):
		return fmt.Errorf("%w: namespace %q", ErrInvalidText, ns)
	}
	ctx, cancel := db.bound(ctx)
	defer cancel()
	var err error
	if keep == 0 {
		_, err = db.pool.Exec(ctx, `DELETE FROM operational_state_history_keep WHERE namespace = $1`, ns)
	} else {
		_, err = db.pool.Exec(ctx, `INSERT INTO operational_state_history_keep (namespace, keep) VALUES ($1, $2)
			ON CONFLICT (namespace) DO UPDATE SET keep = excluded.keep`, ns, keep)
	}
	return db.timedOut(ctx, classify(err))
}

// HistoryKeeps returns every namespace that keeps history, with its keep.
func (db *DB) HistoryKeeps(ctx context.Context) (map[string]int, error) {
	ctx, cancel := db.bound(ctx)
	defer cancel()
	rows, err := db.pool.Query(ctx, `SELECT namespace, keep FROM operational_state_history_keep`)
	if err != nil {
		return nil, db.timedOut(ctx, classify(err))
	}
	out := make(map[string]int)
	for rows.Next() {
		var ns string
		var keep int
		if err := rows.Scan(&ns, &keep); err != nil {
			rows.Close()
			return nil, db.timedOut(ctx, classify(err))
		}
		out[ns] = keep
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, db.timedOut(ctx, classify(err))
	}
	return out, nil
}

// millisOf is the timestamptz column col in Unix milliseconds, NULL for
// NULL, as expiryMillis reads expires_at.
func millisOf(col string) string {
	return `CASE WHEN ` + col + ` IS NULL OR ` + col + ` = 'infinity' THEN NULL
	WHEN ` + col + ` = '-infinity' THEN -62167219200000
	WHEN ` + col + ` = 'epoch' THEN -1
	ELSE floor(extract(epoch FROM ` + col + `) * 1000)::bigint END`
}

// historyColumns are what History reads of a change, in Change's order,
// and the server's now() to translate the expiries with (see local).
var historyColumns = `seq, ` + millisOf("at") + `, namespace, key, op,
	before, ` + millisOf("before_expires_at") + `, after, ` + millisOf("after_expires_at") + `,
	coalesce(actor, ''), ` + serverMillis + ` FROM operational_state_history`

var (
	// historyKeySQL reads the changes of key $2 of namespace $1 with
	// seq below $3, newest first, at most $4. The one index, (namespace,
	// seq), has no key: it scans the namespace's changes back from $3,
	// skipping other keys' (at most what the namespace keeps, and what
	// pruning has not deleted yet). Reads of history are an operator's,
	// not a writer's: an index for them would cost every recorded change.
	historyKeySQL = `SELECT ` + historyColumns + `
	WHERE namespace = $1 AND key = $2 AND seq < $3 ORDER BY seq DESC LIMIT $4`
	// historyNamespaceSQL reads those of every key of namespace $1.
	historyNamespaceSQL = `SELECT ` + historyColumns + `
	WHERE namespace = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3`
)

// History returns at most limit recorded changes of ns, of key alone
// unless key is "", with Seq below before (0: from the newest), newest
// first. Time is the server's clock; BeforeExpiresAt and ExpiresAt are
// instants of the DB's clock, as Get's expiries are (see local). A
// namespace that keeps no history returns what pruning has not deleted
// yet.
func (db *DB) History(ctx context.Context, ns, key string, before int64, limit int) ([]storage.Change, error) {
	if limit <= 0 || !storable(ns) || !storable(key) {
		return nil, nil
	}
	if before <= 0 {
		before = math.MaxInt64
	}
	ctx, cancel := db.bound(ctx)
	defer cancel()
	var rows pgx.Rows
	var err error
	if key == "" {
		rows, err = db.pool.Query(ctx, historyNamespaceSQL, ns, before, limit)
	} else {
		rows, err = db.pool.Query(ctx, historyKeySQL, ns, key, before, limit)
	}
	if err != nil {
		return nil, db.timedOut(ctx, classify(err))
	}
	out, err := pgx.CollectRows(rows, db.scanChange)
	if err != nil {
		return nil, db.timedOut(ctx, classify(err))
	}
	return out, nil
}

// scanChange reads one row of historyColumns.
func (db *DB) scanChange(r pgx.CollectableRow) (storage.Change, error) {
	var c storage.Change
	var at, bexp, aexp *int64
	var op string
	var bval, aval *string
	var srv int64
	if err := r.Scan(&c.Seq, &at, &c.Namespace, &c.Key, &op, &bval, &bexp, &aval, &aexp, &c.Actor, &srv); err != nil {
		return c, err
	}
	if at != nil {
		c.Time = *at
	}
	switch op {
	case "set":
		c.Op = storage.ChangeSet
	case "delete":
		c.Op = storage.ChangeDelete
	case "expire":
		c.Op = storage.ChangeExpire
	default:
		return c, fmt.Errorf("opstate: history change %d has op %q, not set, delete or expire", c.Seq, op)
	}
	if bval != nil {
		c.Existed, c.Before, c.BeforeExpiresAt = true, *bval, db.local(bexp, srv)
	}
	if aval != nil {
		c.After, c.ExpiresAt = *aval, db.local(aexp, srv)
	}
	return c, nil
}

// pruneHistorySQL deletes at most $1 changes beyond their namespace's
// keep, or of a namespace that keeps none, skipping those another pruner
// holds. It finds the namespaces of the history by a walk of the primary
// key (namespace, seq), one probe a namespace, and in each the changes
// beyond its keep newest by the same index; it stops once it has $1 of
// them, and deletes them by their primary key.
const pruneHistorySQL = `WITH RECURSIVE nss(ns) AS (
	(SELECT namespace FROM operational_state_history ORDER BY namespace LIMIT 1)
	UNION ALL
	SELECT (SELECT h.namespace FROM operational_state_history h
		WHERE h.namespace > nss.ns ORDER BY h.namespace LIMIT 1)
	FROM nss WHERE nss.ns IS NOT NULL
), doomed AS (
	SELECT nss.ns, d.seq FROM nss CROSS JOIN LATERAL (
		SELECT h.seq FROM operational_state_history h
		WHERE h.namespace = nss.ns
		ORDER BY h.seq DESC
		OFFSET coalesce((SELECT k.keep FROM operational_state_history_keep k WHERE k.namespace = nss.ns), 0)
		LIMIT $1) d
	WHERE nss.ns IS NOT NULL
	LIMIT $1
)
DELETE FROM operational_state_history WHERE (namespace, seq) IN (
	SELECT h.namespace, h.seq FROM operational_state_history h
	WHERE (h.namespace, h.seq) IN (SELECT ns, seq FROM doomed)
	FOR UPDATE SKIP LOCKED)`

// PruneHistory deletes at most limit changes beyond their namespace's
// keep, or of a namespace that keeps none, in one statement, and returns
// how many it deleted. It locks only the changes it deletes: writers,
// which add changes, never wait for it.
func (db *DB) PruneHistory(ctx context.Context, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	b := &pgx.Batch{}
	b.Queue(pruneHistorySQL, limit)
	var n int
	err := db.run(ctx, b, func(br pgx.BatchResults) error {
		tag, err := br.Exec()
		n = int(tag.RowsAffected())
		return err
	})
	if err != nil {
		return 0, classify(err)
	}
	return n, nil
}
