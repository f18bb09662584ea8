// Package linearcheck checks, with the porcupine linearizability checker,
// the promise that package opstate makes in its Guarantees section: for
// writes made through one Store, each key is linearizable, conditional
// writes included, and conditional writes are decided by SQLite whichever
// Store on the file makes them. It holds tests
// only, in a module of its own, so that opstate keeps its three
// dependencies.
//
// # What is checked
//
// Eight goroutines run Lookup, Set, SetWithTTL, Delete and the conditional
// writes SetIfAbsent, SetIfAbsentWithTTL, CompareAndSwap,
// CompareAndSwapWithTTL and CompareAndDelete on three keys in two
// namespaces of one [github.com/d8da9184/opstate.Store], and every call is
// recorded with its invocation and response. The history is split by key
// and each part is checked against a register whose value may carry an
// expiry: Set stores a value with no expiry, SetWithTTL a value with one,
// Delete empties the register, and Lookup must return exactly what the
// register holds at the read's clock, an empty value being distinct from an
// absent key. A key is absent when the register is empty or its expiry has
// passed at the call's clock; SetIfAbsent stores exactly when the key is
// absent, CompareAndSwap exactly when it is live and holds the old value
// given (clearing the expiry, or setting the WithTTL variant's), and
// CompareAndDelete empties the register exactly when it is live and holds
// the old value; each must report whether it did, and one that did not
// leaves the register as it was. Every write writes a value no other write
// uses, which keeps the check fast; the old values of CompareAndSwap and
// CompareAndDelete are the last value the goroutine saw of the key or the
// value of the write called last, so that some match and some do not.
// Over the histories of a configuration, each conditional kind must have
// both changed its key and been refused. Porcupine's answer must be Ok;
// Illegal is a bug in opstate, and Unknown (the checker timed out) fails
// the test too.
//
// Histories are recorded in six configurations: default options; a
// cache of 768 bytes with other goroutines writing unrelated keys, so that
// the checked keys are evicted and read again from SQLite; the background
// sweeper every millisecond plus a goroutine calling DeleteExpired without
// pause, with a read-heavy mix so that expired rows live long enough to be
// swept (and overwritten by SetIfAbsent); the cache disabled, as a
// control; two Stores on one file with the goroutines split between them,
// where the writes alone are checked; and two Stores on one file with
// numbered writers, where only the documented weaker promise of reads is
// checked (see below).
//
// # Time and expiry
//
// The Stores run on an injected clock that the test moves only between
// phases: all calls of one phase are invoked after the clock was set and
// have returned before it moves again. Every recorded call therefore runs
// entirely under one clock value, which is recorded in its input: a
// write with a TTL records the absolute expiry it asks for (the phase's clock
// plus the TTL, both whole milliseconds, so opstate's rounding to the
// millisecond changes nothing) and a Lookup records the clock under which
// it read, and a conditional write the clock under which it decided. The
// model then decides visibility exactly as the documentation
// does: a value with expiry e is visible to a read at clock t if and only if
// t < e. Because the clock is part of each operation's input, a history is
// accepted exactly when there is a linearization consistent with real time
// and with this sequential specification; the modelling adds no freedom and
// removes none.
//
// The sweeper and DeleteExpired are not in the history: they delete only
// rows whose expiry has passed at their clock, and since the clock never
// goes back such rows are invisible to every later read. They may run at
// any time, across phase boundaries too, and a correct Store still yields
// a linearizable history; a Store whose sweeping disturbed other keys, or
// put back an old value, does not.
//
// TTLs are chosen so that expiries fall before, exactly on (t == e, the key
// must read as missing) and after the next phase boundaries.
//
// # Two Stores on one file
//
// Two Stores on one file are not linearizable together: a Store sees the
// other's writes only after its next SyncInterval check, so its reads may
// be stale. Their writes are, though: every write, conditional or not,
// commits in SQLite, and a conditional one is decided there, in the
// write's own transaction, against what the file holds, whichever Store
// made it. The two-stores variant of TestLinearizable therefore runs the
// standard workload with half the goroutines on each Store and checks the
// history without its Lookups. The Lookups still run, so that each cache
// holds values the other Store has overwritten: a conditional write decided
// from this Store's cache would be refused or accepted wrongly.
//
// TestTwoStores checks the documented bound on the reads. Two writers, one
// per Store, write numbered values to a key each (some through SetIfAbsent
// and CompareAndSwap, which must succeed), while readers read both keys
// through both Stores. A read must not return a value whose write had not
// been called when the read returned; through the writer's Store it must
// return the last write that returned before the read began, or a later
// one; through the other Store, the last write that returned at least
// SyncInterval plus a margin for scheduling before the read began, or a
// later one. At the end, after quiescence and one such bound, both Stores
// and a newly opened third one must agree on every key.
//
// # The checker is not vacuous
//
// TestModelRejects feeds the model hand-made histories that are not
// linearizable (a stale read, an expired value served, an empty value
// confused with a missing key, two SetIfAbsent calls that both stored, a
// CompareAndSwap of an expired value, one that kept the old expiry) and
// asserts porcupine's verdict.
// TestStaleWrapperRejected runs the same workload as the variants through
// a wrapper around Store that sometimes answers a read with a value that
// was certainly overwritten before the read began, and asserts that
// porcupine rejects the history. TestCheckThenActRejected runs it through a
// wrapper whose conditional writes are a Lookup, a comparison in Go and a
// plain write, on one Store and on two, and asserts that porcupine rejects
// one of a few histories (in practice, the first).
//
// README.md says how to run the tests and what they found.
package linearcheck
