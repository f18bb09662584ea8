package persist

import (
	"github.com/d8da9184/opstate/storage"

	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"

	"modernc.org/sqlite"
)

// The types of a write, shared with every backend (package storage).
type (
	// WriteKind says what a [Write] does.
	WriteKind = storage.WriteKind
	// Write is one write of a batch given to [DB.Apply].
	Write = storage.Write
	// Result is what one Write of a committed batch did.
	Result = storage.Result
	// Key names one row.
	Key = storage.Key
)

// The kinds of [Write]; see storage's.
const (
	Put             = storage.Put
	Delete          = storage.Delete
	DeleteNamespace = storage.DeleteNamespace
	PutIfAbsent     = storage.PutIfAbsent
	Swap            = storage.Swap
	DeleteIf        = storage.DeleteIf
)

// sweepSQL deletes the ?2 rows that expired earliest, at or before the
// time ?1, and returns their keys. The inner SELECT walks
// operational_state_expiry.
const sweepSQL = `DELETE FROM operational_state WHERE (namespace, key) IN (
	SELECT namespace, key FROM operational_state
	WHERE expires_at IS NOT NULL AND julianday(expires_at) <= julianday(?)
	ORDER BY julianday(expires_at) LIMIT ?)
	RETURNING namespace, key`

// maxPutRows bounds the rows of one multi-row upsert statement. SQLite
// copies every page such a statement changes into a statement journal,
// which it moves to a temporary file once it passes 64 KiB: 12 rows of
// scattered keys on 4 KiB pages stay below that, and cost less a row than
// one statement of 32 (BenchmarkApply, NORMAL/scattered/32-rows, with
// maxPutRows 12 and 32).
const maxPutRows = 12

// writeConn holds the statements of the write connection, prepared on the
// driver connection itself: a batch runs without database/sql's per-call
// bookkeeping.
type writeConn struct {
	conn                    driver.Conn
	begin, commit, rollback driver.Stmt
	beginRead               driver.Stmt // a deferred BEGIN: a read transaction
	del, delNS, sweep       driver.Stmt
	putIfAbsent, swap       driver.Stmt
	deleteIf, held          driver.Stmt
	dataVersion             driver.Stmt
	schemaVersion           driver.Stmt
	logMax, logRead, prune  driver.Stmt
	setKeep, deleteKeep     driver.Stmt // history.go's
	pruneHistory            driver.Stmt
	emptyHistory            driver.Stmt
	setWriterActor          driver.Stmt
	status                  sqlite.DBStatus             // conn's counters
	puts                    [maxPutRows + 1]driver.Stmt // puts[n] upserts n rows; prepared on first use
	args                    []driver.NamedValue         // reused between statements
	// changed collects the keys of the rows the transaction in progress
	// changed, each logged once in the change log: Apply hands them to the
	// DB's record of its own commits when the transaction commits.
	changed []Key
	// actor is what temp.opstate_writer says of the connection's history
	// rows when actorSet is true: their actor, and no sweep's. A statement
	// that failed, or a transaction rolled back, may have undone what the
	// DB last set, so that every error unsets actorSet (history.go).
	actor    string
	actorSet bool
}

// Apply runs ws in one transaction, in order, and returns when it has
// committed, with what each write did (results[i] is ws[i]'s); if anything
// fails, it returns nil results and nothing of ws is applied. A batch of one
// write runs as a single autocommit statement. Consecutive Puts share
// multi-row statements. now (Unix milliseconds) is the updated_at of every
// Put. While the last pass of a [DB.Checkpoint] holds writes off, Apply
// waits for it.
//
// Apply waits up to BusyTimeout for a lock another connection holds, then
// fails with [ErrBusy]. ctx ends that wait: Apply then fails at once with
// an error that matches ctx.Err(), and nothing of ws is applied; so it
// does, without beginning, when ctx has ended already. A statement in
// progress is never interrupted, so that an error never hides a commit.
//
// Once another SQLite library was found beside this DB (see
// [ErrForeignSQLite]), Apply fails with that error and writes nothing. A
// transaction during which one opened or closed the file fails with it
// too, though it committed: that library may lose it. A write that fails
// with damage such a library causes (ErrCorrupt, ErrIO, ErrNotDatabase)
// looks for one at once, and its error matches ErrForeignSQLite as well
// when one is found.
func (db *DB) Apply(ctx context.Context, now int64, ws []Write) ([]Result, error) {
	if err := db.guard.beforeWrite(); err != nil {
		return nil, err
	}
	db.waitCheckpoint()
	db.wmu.Lock()
	defer db.wmu.Unlock()
	// The results live in a buffer of the DB's own, reused by the next
	// Apply (see storage.Backend): a lone write allocates nothing for them.
	if cap(db.results) < len(ws) {
		db.results = make([]Result, len(ws))
	}
	res := db.results[:len(ws)]
	err := db.w.Raw(func(dc any) error {
		wc, err := db.writeConnLocked(dc)
		if err != nil {
			return err
		}
		defer wc.loggedLocked(db)
		clear(res)
		wc.changed = wc.changed[:0]
		// Statements run on a context that does not end: ctx ends only
		// the waits for locks (lockwait.go).
		bg := context.Background()
		// A conditional write that changes nothing reads the row it
		// found in the same transaction: it needs one even alone.
		if len(ws) == 1 && !ws[0].Kind.Conditional() {
			if err := db.waitLock(ctx, func() error { return wc.run(bg, now, ws, res) }); err != nil {
				return err
			}
			db.ownLocked(wc.changed)
			return nil
		}
		if err := db.waitLock(ctx, func() error { _, err := wc.exec(bg, wc.begin); return err }); err != nil {
			return err
		}
		if err := wc.run(bg, now, ws, res); err != nil {
			wc.exec(bg, wc.rollback)
			return err
		}
		if err := db.waitLock(ctx, func() error { _, err := wc.exec(bg, wc.commit); return err }); err != nil {
			// A failed COMMIT may have ended the transaction already;
			// ROLLBACK then fails harmlessly.
			wc.exec(bg, wc.rollback)
			return err
		}
		db.ownLocked(wc.changed)
		return nil
	})
	if err != nil && db.wc != nil {
		db.wc.actorSet = false
	}
	if err == nil {
		err = db.guard.afterCommit()
	}
	if err != nil {
		return nil, db.guard.explain(db.classify(err))
	}
	return res, nil
}

// DeleteExpired deletes at most limit rows whose expiry is at or before now
// (Unix milliseconds), earliest first, in one statement on the write
// connection, and returns their keys. Like Apply, it waits for a batch in
// progress and for the last pass of a checkpoint; a write waits for it as
// for a batch, and fails as it does once another SQLite library was found.
// ctx ends its wait for another connection's lock as it ends Apply's.
func (db *DB) DeleteExpired(ctx context.Context, now int64, limit int) ([]Key, error) {
	if err := db.guard.beforeWrite(); err != nil {
		return nil, err
	}
	db.waitCheckpoint()
	db.wmu.Lock()
	defer db.wmu.Unlock()
	var keys []Key
	err := db.w.Raw(func(dc any) error {
		wc, err := db.writeConnLocked(dc)
		if err != nil {
			return err
		}
		defer wc.loggedLocked(db)
		// The history records what the sweep deletes as expired, by the
		// DB's actor, whatever SQLite's clock says (history_schema.go).
		bg := context.Background()
		if err := wc.setWriter(bg, db.actor, true); err != nil {
			return err
		}
		err = db.waitLock(ctx, func() error {
			keys, err = wc.deleteExpired(bg, formatTime(now), limit)
			return err
		})
		if err == nil {
			db.ownLocked(keys)
		}
		return errors.Join(err, wc.setWriter(bg, db.actor, false))
	})
	if err == nil {
		err = db.guard.afterCommit()
	}
	if err != nil {
		return nil, db.guard.explain(db.classify(err))
	}
	return keys, nil
}

// writeConnLocked returns the write connection's statements, preparing
// them on first use. dc is the driver connection that db.w pins for its
// whole life.
func (db *DB) writeConnLocked(dc any) (*writeConn, error) {
	if db.wc != nil {
		return db.wc, nil
	}
	conn, ok := dc.(driver.Conn)
	if !ok {
		return nil, fmt.Errorf("opstate: driver connection %T is not a driver.Conn", dc)
	}
	// Another driver's connection ([OpenDB]) has no counters: its DB
	// counts no frames, and runs no checkpointer that would need them.
	status, ok := dc.(sqlite.DBStatus)
	if !ok && !db.shared {
		return nil, fmt.Errorf("opstate: driver connection %T has no counters", dc)
	}
	// Count from here: what Open wrote (migrations, and a page of a new
	// file written outside the log when it switches to WAL) is not Apply's.
	if ok {
		if _, _, err := status.Status(sqlite.DBStatusCacheWrite, true); err != nil {
			return nil, err
		}
	}
	wc := &writeConn{conn: conn, status: status}
	var err error
	prep := func(dst *driver.Stmt, query string) {
		if err == nil {
			// Kept only when prepared: the driver's failed statement is a
			// nil pointer in a non-nil interface, which close would call.
			var st driver.Stmt
			if st, err = prepare(conn, query); err == nil {
				*dst = st
			}
		}
	}
	prep(&wc.begin, "BEGIN IMMEDIATE")
	prep(&wc.beginRead, "BEGIN")
	prep(&wc.commit, "COMMIT")
	prep(&wc.rollback, "ROLLBACK")
	prep(&wc.del, `DELETE FROM operational_state WHERE namespace = ? AND key = ?`)
	prep(&wc.delNS, `DELETE FROM operational_state WHERE namespace = ? RETURNING namespace, key`)
	prep(&wc.putIfAbsent, putIfAbsentSQL)
	prep(&wc.swap, swapSQL)
	prep(&wc.deleteIf, deleteIfSQL)
	prep(&wc.held, `SELECT value, `+expiryMillis+` FROM operational_state WHERE namespace = ? AND key = ?`)
	prep(&wc.logMax, logMaxSQL)
	prep(&wc.logRead, logReadSQL)
	prep(&wc.prune, pruneSQL)
	prep(&wc.dataVersion, `PRAGMA data_version`)
	prep(&wc.schemaVersion, `PRAGMA schema_version`)
	prep(&wc.sweep, sweepSQL)
	prep(&wc.setKeep, setKeepSQL)
	prep(&wc.deleteKeep, deleteKeepSQL)
	prep(&wc.pruneHistory, pruneSQLHistory)
	prep(&wc.emptyHistory, emptySQLHistory)
	prep(&wc.setWriterActor, setWriterActorSQL)
	if err != nil {
		wc.close()
		return nil, err
	}
	db.wc = wc
	return wc, nil
}

func prepare(conn driver.Conn, query string) (driver.Stmt, error) {
	if cp, ok := conn.(driver.ConnPrepareContext); ok {
		return cp.PrepareContext(context.Background(), query)
	}
	return conn.Prepare(query)
}

// query runs st and returns its rows, whose Columns it has called, as
// database/sql does before the first Next: a driver may set up there how
// it converts a row (github.com/ncruces/go-sqlite3 does; modernc's
// returns a slice it holds).
func query(ctx context.Context, st driver.Stmt, args []driver.NamedValue) (driver.Rows, error) {
	rows, err := st.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	rows.Columns()
	return rows, nil
}

// close closes every prepared statement.
func (wc *writeConn) close() {
	for _, st := range append([]driver.Stmt{wc.begin, wc.commit, wc.rollback, wc.del, wc.delNS, wc.sweep,
		wc.beginRead, wc.putIfAbsent, wc.swap, wc.deleteIf, wc.held, wc.dataVersion, wc.schemaVersion, wc.logMax, wc.logRead, wc.prune,
		wc.setKeep, wc.deleteKeep, wc.pruneHistory, wc.emptyHistory, wc.setWriterActor}, wc.puts[:]...) {
		if st != nil {
			st.Close()
		}
	}
}

// DataVersion returns SQLite's data_version of the write connection. It
// changes exactly when a connection other than this DB's writer (another
// process, another DB on the same file, the sqlite3 shell) has committed
// since the last call, and never for this DB's own writes. ctx ends a
// wait for another connection's lock.
func (db *DB) DataVersion(ctx context.Context) (int64, error) {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	var v int64
	err := db.w.Raw(func(dc any) error {
		wc, err := db.writeConnLocked(dc)
		if err != nil {
			return err
		}
		return db.waitLock(ctx, func() error {
			v, err = wc.int(context.Background(), wc.dataVersion)
			return err
		})
	})
	return v, db.classify(err)
}

// closeWriteConn closes the write statements; called by Close.
func (db *DB) closeWriteConn() {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	if db.wc == nil {
		return
	}
	db.w.Raw(func(any) error {
		db.wc.close()
		return nil
	})
	db.wc = nil
}

// putStmt returns the statement that upserts n rows.
func (wc *writeConn) putStmt(n int) (driver.Stmt, error) {
	if wc.puts[n] == nil {
		rows := strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?), ", n), ", ")
		st, err := prepare(wc.conn, `INSERT INTO operational_state (namespace, key, value, updated_at, expires_at)
			VALUES `+rows+`
			ON CONFLICT (namespace, key) DO UPDATE SET
			value = excluded.value, updated_at = excluded.updated_at, expires_at = excluded.expires_at`)
		if err != nil {
			return nil, err
		}
		wc.puts[n] = st
	}
	return wc.puts[n], nil
}

// run executes ws in order, and sets res[i] to what ws[i] did.
func (wc *writeConn) run(ctx context.Context, now int64, ws []Write, res []Result) error {
	stamp := formatTime(now)
	for i := 0; i < len(ws); {
		w, r := &ws[i], &res[i]
		if err := wc.useActor(ctx, w.Actor); err != nil {
			return err
		}
		var err error
		switch w.Kind {
		case Put:
			n := 1
			for n < maxPutRows && i+n < len(ws) && ws[i+n].Kind == Put && ws[i+n].Actor == w.Actor {
				n++
			}
			err = wc.put(ctx, stamp, ws[i:i+n], res[i:i+n])
			i += n
			if err != nil {
				return err
			}
			continue
		case Delete:
			var n int64
			n, err = wc.exec(ctx, wc.del, w.Namespace, w.Key)
			wc.note(w, r, n > 0)
		case DeleteNamespace:
			var keys []Key
			keys, err = wc.keys(ctx, wc.delNS, w.Namespace)
			wc.changed = append(wc.changed, keys...)
			r.Changed = len(keys) > 0
		case PutIfAbsent, Swap, DeleteIf:
			err = wc.conditional(ctx, stamp, w, r)
		default:
			err = fmt.Errorf("opstate: unknown write kind %d", w.Kind)
		}
		if err != nil {
			return err
		}
		i++
	}
	return nil
}

// put upserts the rows of puts, all of kind Put, in one statement.
func (wc *writeConn) put(ctx context.Context, stamp string, puts []Write, res []Result) error {
	st, err := wc.putStmt(len(puts))
	if err != nil {
		return err
	}
	args := wc.args[:0]
	for i := range puts {
		w := &puts[i]
		var exp driver.Value
		if w.ExpiresAt != 0 {
			exp = formatTime(w.ExpiresAt)
		}
		args = append(args,
			driver.NamedValue{Ordinal: len(args) + 1, Value: w.Namespace},
			driver.NamedValue{Ordinal: len(args) + 2, Value: w.Key},
			driver.NamedValue{Ordinal: len(args) + 3, Value: w.Value},
			driver.NamedValue{Ordinal: len(args) + 4, Value: stamp},
			driver.NamedValue{Ordinal: len(args) + 5, Value: exp},
		)
	}
	wc.args = args
	_, err = st.(driver.StmtExecContext).ExecContext(ctx, args)
	clear(args) // drop references to the values
	if err == nil {
		for i := range puts {
			wc.note(&puts[i], &res[i], true) // an upsert always changes its row
		}
	}
	return err
}

// note records in r whether w changed its row.
func (wc *writeConn) note(w *Write, r *Result, changed bool) {
	r.Changed = changed
	if changed {
		wc.changed = append(wc.changed, Key{Namespace: w.Namespace, Key: w.Key})
	}
}

// conditional runs w, a conditional write, in one statement whose count of
// changed rows is the answer; a write that changes nothing reads the row it
// found into r.Held.
func (wc *writeConn) conditional(ctx context.Context, stamp string, w *Write, r *Result) error {
	var exp driver.Value
	if w.ExpiresAt != 0 {
		exp = formatTime(w.ExpiresAt)
	}
	var n int64
	var err error
	switch w.Kind {
	case PutIfAbsent:
		n, err = wc.exec(ctx, wc.putIfAbsent, w.Namespace, w.Key, w.Value, stamp, exp)
	case Swap:
		n, err = wc.exec(ctx, wc.swap, w.Namespace, w.Key, w.Value, stamp, exp, w.Old)
	case DeleteIf:
		n, err = wc.exec(ctx, wc.deleteIf, w.Namespace, w.Key, w.Old, stamp)
	}
	if err != nil {
		return err
	}
	wc.note(w, r, n > 0)
	if n > 0 {
		return nil
	}
	rows, err := query(ctx, wc.held, wc.bind(w.Namespace, w.Key))
	if err != nil {
		return err
	}
	defer rows.Close()
	dest := make([]driver.Value, 2)
	switch err := rows.Next(dest); {
	case errors.Is(err, io.EOF):
		return nil
	case err != nil:
		return err
	}
	r.Found = true
	r.Held.Value = text(dest[0])
	if ms, ok := dest[1].(int64); ok {
		r.Held.ExpiresAt = parseExpiry(sql.NullInt64{Int64: ms, Valid: true})
	}
	return nil
}

// live is true of a row that has not expired at the time ?4: the SQL form
// of what a read decides (see expiryMillis).
const live = `(julianday(expires_at) IS NULL OR julianday(expires_at) > julianday(?4))`

// putIfAbsentSQL inserts a row, or overwrites one that expired at ?4; the
// row is changed exactly when the key was absent. The ON CONFLICT clause
// names the table's columns with the table's name, since excluded's are the
// new row's.
const putIfAbsentSQL = `INSERT INTO operational_state (namespace, key, value, updated_at, expires_at)
	VALUES (?1, ?2, ?3, ?4, ?5)
	ON CONFLICT (namespace, key) DO UPDATE SET
	value = excluded.value, updated_at = excluded.updated_at, expires_at = excluded.expires_at
	WHERE julianday(operational_state.expires_at) <= julianday(?4)`

// swapSQL replaces the value of a live row that holds ?6. Values are
// compared as bytes, whatever type the column holds (a value written by
// hand as a number or a blob reads back as its text).
const swapSQL = `UPDATE operational_state SET value = ?3, updated_at = ?4, expires_at = ?5
	WHERE namespace = ?1 AND key = ?2 AND CAST(value AS BLOB) = CAST(?6 AS BLOB) AND ` + live

// deleteIfSQL deletes a live row that holds ?3.
const deleteIfSQL = `DELETE FROM operational_state
	WHERE namespace = ?1 AND key = ?2 AND CAST(value AS BLOB) = CAST(?3 AS BLOB) AND ` + live

func (wc *writeConn) bind(vals ...driver.Value) []driver.NamedValue {
	args := wc.args[:0]
	for i, v := range vals {
		args = append(args, driver.NamedValue{Ordinal: i + 1, Value: v})
	}
	wc.args = args
	return args
}

// exec runs st and returns how many rows it changed.
func (wc *writeConn) exec(ctx context.Context, st driver.Stmt, vals ...driver.Value) (int64, error) {
	res, err := st.(driver.StmtExecContext).ExecContext(ctx, wc.bind(vals...))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// keys runs st and returns the rows it returns, namespace and key, as
// keys, leaving out those whose namespace or key is not TEXT, which name
// no key (a BLOB written by hand; see logRow).
func (wc *writeConn) keys(ctx context.Context, st driver.Stmt, vals ...driver.Value) ([]Key, error) {
	rows, err := query(ctx, st, wc.bind(vals...))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys []Key
	dest := make([]driver.Value, 2)
	for {
		err := rows.Next(dest)
		if errors.Is(err, io.EOF) {
			return keys, nil
		}
		if err != nil {
			return nil, err
		}
		ns, nsText := dest[0].(string)
		key, keyText := dest[1].(string)
		if nsText && keyText {
			keys = append(keys, Key{Namespace: ns, Key: key})
		}
	}
}

func (wc *writeConn) deleteExpired(ctx context.Context, stamp string, limit int) ([]Key, error) {
	return wc.keys(ctx, wc.sweep, stamp, int64(limit))
}

// text converts a column value the driver returned to a string.
func text(v driver.Value) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}
