package pgstate

import "github.com/d8da9184/opstate/pgstate/internal/pgdb"

// Errors of a Store over PostgreSQL that a Store on SQLite never returns,
// matchable with errors.Is; the others are package opstate's.
var (
	// ErrNotifyQueueFull is returned by a write (Set, Delete, the
	// conditional writes, a sweep) when PostgreSQL's notification queue
	// is full: the commit, which notifies every changed row, could not
	// queue its notifications, and nothing of it was applied. The queue
	// (8 GB by default) fills only while a session that LISTENs stops
	// reading, such as the listener of an agent whose process is stopped
	// (SIGSTOP, a debugger) or a session left in an open transaction after
	// a LISTEN. pg_notification_queue_usage() shows how full it is, and
	// ending that session (pg_terminate_backend) lets it drain; writes
	// may then be retried.
	ErrNotifyQueueFull = pgdb.ErrNotifyQueueFull

	// ErrTriggerDisabled is returned by [Open] when a trigger that
	// notifies changes of operational_state is disabled, or enabled for
	// only some sessions (ENABLE TRIGGER rather than ENABLE ALWAYS
	// TRIGGER, as after ALTER TABLE ... ENABLE TRIGGER ALL): changes made
	// by others could then reach no Store's cache. Its message names the
	// SQL that turns the trigger back on, after "; run: ". A running
	// Store that finds it so logs it as the cause of a change-stream
	// outage (see the package documentation, "Triggers").
	ErrTriggerDisabled = pgdb.ErrTriggerDisabled
)
