package pgdb

import (
	"context"

	"github.com/d8da9184/opstate/storage"
)

// ListRows returns every row of ns live by the server's clock, keyed by
// key, with its expiry as an instant of the DB's clock (see local): the
// rows List returns, judged in the same way. It makes DB a
// storage.RowLister. now is not used: the server judges.
func (db *DB) ListRows(ctx context.Context, ns string, now int64) (map[string]storage.Row, error) {
	ctx, cancel := db.bound(ctx)
	defer cancel()
	m, err := db.listRows(ctx, ns)
	return m, db.timedOut(ctx, err)
}

func (db *DB) listRows(ctx context.Context, ns string) (map[string]storage.Row, error) {
	out := make(map[string]storage.Row)
	if !storable(ns) {
		return out, nil
	}
	// One statement: its rows, its liveness test and its now() are of
	// one snapshot and one instant.
	rows, err := db.pool.Query(ctx, `SELECT key, value, `+expiryMillis+`, `+serverMillis+`
		FROM operational_state WHERE namespace = $1 AND `+live, ns)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var r storage.Row
		var exp *int64
		var srv int64
		if err := rows.Scan(&k, &r.Value, &exp, &srv); err != nil {
			return nil, classify(err)
		}
		r.ExpiresAt = db.local(exp, srv)
		out[k] = r
	}
	if err := rows.Err(); err != nil {
		return nil, classify(err)
	}
	return out, nil
}
