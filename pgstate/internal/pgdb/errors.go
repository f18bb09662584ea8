package pgdb

import (
	"errors"
	"fmt"
	"strings"

	"github.com/d8da9184/opstate/storage"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrInvalidText is returned by [DB.Apply] for a write that would store a
// namespace, key or value PostgreSQL's text cannot hold: one with a NUL
// byte or invalid UTF-8.
var ErrInvalidText = storage.ErrInvalidText

// ErrNotifyQueueFull is returned by [DB.Apply] when the server's
// notification queue is full, so that its commit, which notifies every
// row it changed, could not queue them: the batch was not applied. The
// queue (8 GB by default) fills when a session that LISTENs stops reading
// (a process stopped, or a session left in a transaction) while others
// write; pg_notification_queue_usage() shows how full it is, and ending
// that session (pg_terminate_backend) empties it.
var ErrNotifyQueueFull = errors.New("opstate: PostgreSQL's notification queue is full (a listening session is not reading; see pg_notification_queue_usage())")

// ErrTriggerDisabled is returned by [DB.Listen], and by a listener's Next,
// when a trigger that notifies the changes of operational_state is
// missing, disabled, or enabled for only some sessions, so that changes
// may reach no Store. Its message says, after "; run: ", the SQL that
// repairs it.
var ErrTriggerDisabled = errors.New("opstate: a notify trigger of operational_state is missing or disabled, so Stores cannot see every change")

// classify wraps the errors callers act on with their sentinels.
func classify(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code {
	case "55P03", // lock_not_available: lock_timeout
		"40P01", // deadlock_detected: two batches locked keys in opposite orders
		// query_canceled: the server canceled the statement, for its
		// statement_timeout or an operator's pg_cancel_backend. (A batch
		// that the DB's caller canceled is reported with the context's
		// error instead: see run.)
		"57014":
		return fmt.Errorf("%w: %w", storage.ErrBusy, err)
	case "54000": // program_limit_exceeded: of many limits, the queue's is the one in async.c
		if pe.File == "async.c" || strings.Contains(pe.Message, "NOTIFY queue") {
			return fmt.Errorf("%w: %w", ErrNotifyQueueFull, err)
		}
	case "22021", "22P05": // invalid byte sequence, untranslatable character
		return fmt.Errorf("%w: %w", ErrInvalidText, err)
	}
	return err
}
