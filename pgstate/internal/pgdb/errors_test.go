package pgdb_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	"github.com/d8da9184/opstate/pgstate/internal/pgdb"
	"github.com/d8da9184/opstate/storage"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestClassify checks which server errors get which sentinel. A full
// notification queue cannot be made in a test (the queue is 8 GB, fixed
// before PostgreSQL 17), so its error is built as PostgreSQL 15's
// PreCommit_Notify reports it; the others' codes are what the server
// sends (TestStatementTimeout, TestBusy, TestDeadlockBusy and
// TestIndexRowTooBig meet them for real).
func TestClassify(t *testing.T) {
	queueFull := &pgconn.PgError{Severity: "ERROR", Code: "54000", Message: "too many notifications in the NOTIFY queue",
		File: "async.c", Line: 919, Routine: "PreCommit_Notify"}
	cases := []struct {
		name string
		err  error
		want error // nil: no sentinel
	}{
		{"queue full", queueFull, pgdb.ErrNotifyQueueFull},
		{"queue full, wrapped", fmt.Errorf("batch: %w", queueFull), pgdb.ErrNotifyQueueFull},
		{"queue full, translated", &pgconn.PgError{Code: "54000", Message: "zu viele Benachrichtigungen", File: "async.c"}, pgdb.ErrNotifyQueueFull},
		{"queue full, no file", &pgconn.PgError{Code: "54000", Message: "too many notifications in the NOTIFY queue"}, pgdb.ErrNotifyQueueFull},
		{"index row too big", &pgconn.PgError{Code: "54000", Message: "index row size 3016 exceeds btree version 4 maximum 2704", File: "nbtutils.c"}, nil},
		{"statement timeout", &pgconn.PgError{Code: "57014", Message: "canceling statement due to statement timeout"}, storage.ErrBusy},
		{"canceled by an operator", &pgconn.PgError{Code: "57014", Message: "canceling statement due to user request"}, storage.ErrBusy},
		{"lock timeout", &pgconn.PgError{Code: "55P03", Message: "canceling statement due to lock timeout"}, storage.ErrBusy},
		{"deadlock", &pgconn.PgError{Code: "40P01"}, storage.ErrBusy},
		{"invalid text", &pgconn.PgError{Code: "22021"}, storage.ErrInvalidText},
		{"unique violation", &pgconn.PgError{Code: "23505"}, nil},
		{"not a server error", errors.New("EOF"), nil},
	}
	sentinels := []error{pgdb.ErrNotifyQueueFull, storage.ErrBusy, storage.ErrInvalidText, pgdb.ErrTriggerDisabled}
	for _, tc := range cases {
		got := pgdb.Classify(tc.err)
		if !errors.Is(got, tc.err) {
			t.Errorf("%s: Classify(%v) = %v; want the error kept in its chain", tc.name, tc.err, got)
		}
		for _, s := range sentinels {
			if errors.Is(got, s) != (s == tc.want) {
				t.Errorf("%s: Classify(%v) = %v; errors.Is(%v) = %v, want %v", tc.name, tc.err, got, s, !(s == tc.want), s == tc.want)
			}
		}
	}
}

// TestIndexRowTooBig writes a key too large for the primary key's index:
// the server refuses it with 54000, the code of a full notification
// queue too, which Apply must not report as one.
func TestIndexRowTooBig(t *testing.T) {
	db, _, _ := mustOpen(t)
	b := make([]byte, 3000)
	rand.Read(b)
	key := hex.EncodeToString(b) // incompressible: 6000 bytes in the index
	now := localNow()
	_, err := db.Apply(context.Background(), now, []storage.Write{putW("ns", key, "v", 0, now)})
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "54000" {
		t.Fatalf("Apply of a %d-byte key = %v; want SQLSTATE 54000", len(key), err)
	}
	if errors.Is(err, pgdb.ErrNotifyQueueFull) {
		t.Errorf("Apply of a key too big for the index = %v; want it not to match ErrNotifyQueueFull", err)
	}
}
