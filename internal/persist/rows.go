package persist

import "context"

// ListRows returns every row of ns whose expiry is after now (Unix
// milliseconds), keyed by key, with its expiry: the rows List returns,
// read and judged as List reads and judges them. It makes DB a
// storage.RowLister.
func (db *DB) ListRows(ctx context.Context, ns string, now int64) (map[string]Row, error) {
	out := make(map[string]Row)
	if err := db.listLive(ctx, ns, now, func(k string, r Row) { out[k] = r }); err != nil {
		return nil, err
	}
	return out, nil
}
