package persist

import "context"

// SweepSQL is the sweep's statement, for tests of its query plan.
const SweepSQL = sweepSQL

// Synchronous returns PRAGMA synchronous of the write connection.
func (db *DB) Synchronous() (int, error) {
	var n int
	err := db.w.QueryRowContext(context.Background(), "PRAGMA synchronous").Scan(&n)
	return n, err
}
