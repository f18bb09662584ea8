package opstate

import "sync/atomic"

// counters are the Store's counts that Stats reports.
type counters struct {
	invalidations atomic.Uint64 // entries dropped for another connection's change (sync.go)
	flushes       atomic.Uint64 // whole-cache drops (sync.go)
	watchResets   atomic.Uint64 // OpReset events delivered (watch.go)
	expired       atomic.Uint64 // rows deleted by sweeps (sweeper.go)
}
