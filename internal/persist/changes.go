package persist

import (
	"github.com/d8da9184/opstate/storage"

	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
)

// The change log (operational_state_changes, schema version 2) records the
// key of every row any connection inserts, updates or deletes, in the
// writing transaction itself. A DB reads it to learn what others changed
// ([DB.Changes]): when PRAGMA data_version says another connection has
// committed, it reads the rows appended since it last looked, leaves out
// those its own commits appended, and reports the keys of the rest.
//
// Its own rows are told apart by count, not by position: a DB cannot learn
// where in the log a commit's rows went without asking inside every write
// transaction, which costs more than the write itself. So it records the
// keys its commits changed since it last looked (each changed row logs one
// row), and matches the new rows against that record, key by key. Where a
// key was written both by this DB and by another connection in between,
// the match may take the other's row for its own, but then it takes one of
// this DB's rows for the other's, and the key is reported either way: a
// key is reported exactly when someone else changed it. When data_version
// shows no other commit, every new row is this DB's own and none is read.
//
// A position means something only in the log the DB read it from. A
// backup restored into the file (the sqlite3 shell's .restore, or SQLite's
// backup API from any connection) takes it back to an older log, whose
// positions the next commits fill again with other rows: past those, the
// log no longer says what changed since the DB last looked, nor can it
// say what the DB read from the file or wrote to it in between. Every
// such rewind through SQLite replaces the file's pages and bumps its
// schema cookie (PRAGMA schema_version), as VACUUM and every CREATE, DROP
// or ALTER do: when the cookie changed since the DB last looked, Changes
// reports a Reset, and checks the schema the log relies on (schema.go)
// before it reads the log again from where it stands then.

// ChangesLimit is the most rows of the log [DB.Changes] reads at once;
// past it, it reports a Reset instead.
const ChangesLimit = 16384

// SpaceThreshold is how many keys of one namespace [DB.Changes] lists
// before it reports the namespace instead.
const SpaceThreshold = 64

// logMaxSQL is the last position of the log.
const logMaxSQL = `SELECT coalesce(max(seq), 0) FROM operational_state_changes`

// logReadSQL reads the log after position ?1, at most ?2 rows.
const logReadSQL = `SELECT seq, namespace, key, coalesce(expired, 0) FROM operational_state_changes WHERE seq > ?1 ORDER BY seq LIMIT ?2`

// pruneSQL deletes at most ?2 of the oldest rows of the log that are
// more than ?1 rows behind its last, and returns how many it deleted.
const pruneSQL = `DELETE FROM operational_state_changes WHERE seq IN (
	SELECT seq FROM operational_state_changes
	WHERE seq <= (SELECT max(seq) FROM operational_state_changes) - ?1
	ORDER BY seq LIMIT ?2)`

// Changes is what connections other than a DB's own committed to
// operational_state between two calls of [DB.Changes]: its Namespaces are
// those of which others changed more than SpaceThreshold keys, its
// Expired the keys whose last change by others deleted a row that had
// expired by SQLite's clock, and its Reset says that the log cannot say
// what changed (too much did, or the rows were pruned before this DB read
// them).
type Changes = storage.Changes

// logState is where a DB stands in the change log; guarded by DB.wmu.
type logState struct {
	seen    int64 // the last position accounted for
	version int64 // data_version when seen was read
	schema  int64 // schema_version when seen was read
	// recheck is set when the schema changed since: the next Changes
	// checks it before it reads the log again (recheckLocked).
	recheck bool
	own     map[Key]int32 // rows after seen that this DB's commits appended, by key
	owned   int           // their sum
	// lost is set when own grew past ownLimit (nobody called Changes for
	// that long) and was dropped: the next Changes that finds others'
	// commits cannot tell them from this DB's, and reports a Reset.
	lost bool
}

// ownLimit bounds the record of a DB's own changes between two calls of
// Changes: a DB whose owner never calls it (a Store that does not check for
// other writers) must not grow without bound.
const ownLimit = 1 << 16

// ownLocked records that a commit of this DB changed keys (one log row
// each). Called under wmu, after the commit.
func (db *DB) ownLocked(keys []Key) {
	if len(keys) == 0 {
		return
	}
	if db.log.own == nil {
		db.log.own = make(map[Key]int32)
	}
	for _, k := range keys {
		db.log.own[k]++
	}
	db.log.owned += len(keys)
	if db.log.owned > ownLimit {
		db.log.own = nil
		db.log.owned = 0
		db.log.lost = true
	}
}

// startLog records where the log stands; called by Open.
func (db *DB) startLog(ctx context.Context) error {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	return db.w.Raw(func(dc any) error {
		wc, err := db.writeConnLocked(dc)
		if err != nil {
			return err
		}
		return db.positionLocked(ctx, wc)
	})
}

// positionLocked records where the log stands now, with the data_version
// and schema_version of that moment.
func (db *DB) positionLocked(ctx context.Context, wc *writeConn) error {
	return wc.inRead(ctx, func() error {
		var err error
		st := &db.log
		if st.version, err = wc.int(ctx, wc.dataVersion); err != nil {
			return err
		}
		if st.schema, err = wc.int(ctx, wc.schemaVersion); err != nil {
			return err
		}
		st.seen, err = wc.int(ctx, wc.logMax)
		return err
	})
}

// Changes returns what others have committed to operational_state since
// the last call, or since Open. A check that finds nothing new costs one
// PRAGMA data_version. On an error, the position in the log is kept, so
// that the next call that succeeds reports what this one could not. ctx
// ends a wait for another connection's lock, as it ends [DB.Apply]'s.
//
// It reports a Reset when the file's schema changed since the last call
// (a backup restored into it, VACUUM, any CREATE, DROP or ALTER), and
// then first puts back what of opstate's schema is missing or differs
// (schema.go): a file whose change-log trigger was dropped would hide
// others' writes from then on.
func (db *DB) Changes(ctx context.Context) (Changes, error) {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	var ch Changes
	err := db.w.Raw(func(dc any) error {
		wc, err := db.writeConnLocked(dc)
		if err != nil {
			return err
		}
		// It only reads, so a try that met a lock is tried again whole.
		return db.waitLock(ctx, func() error {
			bg := context.Background()
			v, err := wc.int(bg, wc.dataVersion)
			if err != nil || (v == db.log.version && db.log.owned == 0 && !db.log.lost && !db.log.recheck) {
				return err
			}
			return wc.inRead(bg, func() error {
				ch, err = db.readLogLocked(bg, wc)
				return err
			})
		})
	})
	if err == nil && db.log.recheck {
		err = db.recheckLocked(ctx)
	}
	if err != nil {
		return Changes{}, db.classify(err)
	}
	return ch, nil
}

// readLogLocked reads the log inside a read transaction, so that
// data_version and the rows are of one moment.
func (db *DB) readLogLocked(ctx context.Context, wc *writeConn) (Changes, error) {
	v, err := wc.int(ctx, wc.dataVersion)
	if err != nil {
		return Changes{}, err
	}
	st := &db.log
	if v != st.version && !st.recheck {
		schema, err := wc.int(ctx, wc.schemaVersion)
		if err != nil {
			return Changes{}, err
		}
		st.recheck = schema != st.schema
	}
	lost := st.lost
	defer func() {
		// Every commit of this DB so far is in what was read.
		clear(st.own)
		st.owned = 0
		st.lost = false
	}()
	if st.recheck {
		// The log may be another one, or gone: Changes reads where it
		// stands once it has checked the schema (recheckLocked).
		st.version = v
		return Changes{Foreign: true, Reset: true}, nil
	}
	last, err := wc.int(ctx, wc.logMax)
	if err != nil {
		return Changes{}, err
	}
	if v == st.version {
		st.seen = last // nobody else committed: every row since is this DB's
		return Changes{}, nil
	}
	ch := Changes{Foreign: true}
	// The rows after seen, if the log still holds them all.
	var rows []logRow
	if last > st.seen {
		rows, err = wc.readLog(ctx, st.seen, ChangesLimit+1)
		if err != nil {
			return Changes{}, err
		}
	}
	switch {
	case lost, // this DB's own rows cannot be told from others'
		last < st.seen, // the log was cut back: not by opstate
		len(rows) > 0 && rows[0].seq != st.seen+1, // pruned before it was read
		len(rows) > ChangesLimit:
		ch.Reset = true
	default:
		ch.Keys, ch.Namespaces, ch.Expired = db.foreignLocked(rows)
	}
	st.seen, st.version = last, v
	return ch, nil
}

// recheckLocked checks the schema after it changed under the DB, puts
// back what of it is missing or differs, and reads where the log stands
// from then on. Another SQLite library found beside the DB keeps it from
// writing a repair.
func (db *DB) recheckLocked(ctx context.Context) error {
	fix, err := schemaRepairs(ctx, db.w)
	if err != nil {
		return err
	}
	if len(fix) > 0 {
		if err := db.guard.beforeWrite(); err != nil {
			return err
		}
		// The file was in use until now: it is not read whole first. The
		// repair is idempotent, so a try that met another connection's
		// lock is tried again whole; its statements run without ctx,
		// which ends only the wait (see waitLock).
		//
		// It runs on a read connection, not the writer: SQLite attaches
		// the writer's TEMP trigger (history_schema.go) to a history
		// table made again only when the writer reloads the schema
		// another connection changed, and a DROP TABLE on the writer
		// itself would drop the trigger. (That connection's busy handler
		// waits for others' locks, up to BusyTimeout, before ctx is
		// looked at again.)
		err := db.waitLock(ctx, func() error {
			bg := context.Background()
			c, err := db.pool.Conn(bg)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = repairSchema(bg, c, true)
			return err
		})
		if err != nil {
			return err
		}
		if err := createWriterTemp(context.Background(), db.w); err != nil {
			return err
		}
		if db.wc != nil {
			db.wc.actorSet = false
		}
	}
	err = db.w.Raw(func(dc any) error {
		wc, err := db.writeConnLocked(dc)
		if err != nil {
			return err
		}
		return db.positionLocked(ctx, wc)
	})
	if err == nil {
		db.log.recheck = false
	}
	return err
}

// foreignLocked returns the keys of rows that are not this DB's own,
// deduplicated, the namespaces of which there are more than
// SpaceThreshold, and the keys whose last such row is an expired delete.
func (db *DB) foreignLocked(rows []logRow) ([]Key, []string, map[Key]bool) {
	own := db.log.own
	var keys []Key
	var expired map[Key]bool
	seen := make(map[Key]bool)
	perSpace := make(map[string]int)
	for _, r := range rows {
		if !r.text {
			continue // no key; nor is it in own (writeConn.keys)
		}
		if own[r.Key] > 0 {
			own[r.Key]--
			continue
		}
		switch {
		case r.expired:
			if expired == nil {
				expired = make(map[Key]bool)
			}
			expired[r.Key] = true
		case expired[r.Key]:
			delete(expired, r.Key)
		}
		if seen[r.Key] {
			continue
		}
		seen[r.Key] = true
		keys = append(keys, r.Key)
		perSpace[r.Namespace]++
	}
	var spaces []string
	for _, k := range keys {
		if n := perSpace[k.Namespace]; n > SpaceThreshold {
			spaces = append(spaces, k.Namespace)
			perSpace[k.Namespace] = 0 // listed once
		}
	}
	if len(spaces) == 0 {
		return keys, nil, expired
	}
	wide := make(map[string]bool, len(spaces))
	for _, ns := range spaces {
		wide[ns] = true
	}
	kept := keys[:0]
	for _, k := range keys {
		if !wide[k.Namespace] {
			kept = append(kept, k)
		} else {
			delete(expired, k)
		}
	}
	return kept, spaces, expired
}

// PruneChanges deletes up to limit of the oldest rows of the change log
// that are more than keep rows behind its last, and returns how many it
// deleted. A DB that falls behind by more than keep rows learns of it
// ([Changes.Reset]). The last row always stays (keep is at least 1): the
// next row's position follows it, so positions never go back. ctx ends a
// wait for another connection's lock, as it ends [DB.Apply]'s.
func (db *DB) PruneChanges(ctx context.Context, keep, limit int) (int, error) {
	keep = max(keep, 1)
	db.waitCheckpoint()
	db.wmu.Lock()
	defer db.wmu.Unlock()
	var n int64
	err := db.w.Raw(func(dc any) error {
		wc, err := db.writeConnLocked(dc)
		if err != nil {
			return err
		}
		defer wc.loggedLocked(db)
		return db.waitLock(ctx, func() error {
			n, err = wc.exec(context.Background(), wc.prune, int64(keep), int64(limit))
			return err
		})
	})
	return int(n), db.classify(err)
}

// logRow is one row of the change log.
type logRow struct {
	seq int64
	Key
	expired bool // the delete of a row that had expired
	// text says that the row's namespace and key are TEXT: a key. Another
	// type (a BLOB written by hand) names no key, and is not reported.
	text bool
}

// readLog reads at most limit rows of the log after position after.
func (wc *writeConn) readLog(ctx context.Context, after int64, limit int) ([]logRow, error) {
	rows, err := query(ctx, wc.logRead, wc.bind(after, int64(limit)))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []logRow
	dest := make([]driver.Value, 4)
	for {
		err := rows.Next(dest)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		seq, ok := dest[0].(int64)
		if !ok {
			return nil, fmt.Errorf("opstate: change log position is %T", dest[0])
		}
		expired, _ := dest[3].(int64)
		ns, nsText := dest[1].(string)
		key, keyText := dest[2].(string)
		out = append(out, logRow{seq: seq, Key: Key{Namespace: ns, Key: key}, expired: expired == 1, text: nsText && keyText})
	}
}

// int runs st, a query of one integer.
func (wc *writeConn) int(ctx context.Context, st driver.Stmt) (int64, error) {
	rows, err := query(ctx, st, nil)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	dest := make([]driver.Value, 1)
	if err := rows.Next(dest); err != nil {
		return 0, err
	}
	n, ok := dest[0].(int64)
	if !ok {
		return 0, fmt.Errorf("opstate: %T where an integer was expected", dest[0])
	}
	return n, nil
}

// inRead runs f inside a read transaction.
func (wc *writeConn) inRead(ctx context.Context, f func() error) error {
	if _, err := wc.exec(ctx, wc.beginRead); err != nil {
		return err
	}
	err := f()
	if _, cerr := wc.exec(context.Background(), wc.commit); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		wc.exec(context.Background(), wc.rollback)
	}
	return err
}
