package persist

// SweepSQL is the sweep's statement, for tests of its query plan.
const SweepSQL = sweepSQL
