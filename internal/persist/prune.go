package persist

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"math"
	"sync"
)

// Pruning the history. The history has no index but its seq, so a
// namespace's changes cannot be found without reading the others': a
// prune that looked for each namespace's oldest changes afresh at every
// call would read the whole history per namespace per call, and a large
// history would take hours to prune. Instead PruneHistory works in rounds:
//
//   - A round begins with one pass over the history from the newest
//     change, counting each namespace's changes, which finds the seq of
//     each namespace's newest change beyond its keep (its cutoff; every
//     change of a namespace that keeps none is beyond it).
//   - Each call then goes on reading the history from the oldest change
//     up, from where the last call of the round stopped, picks the changes
//     at or below their namespace's cutoff until it has limit of them, and
//     deletes those in one transaction. The round ends when the reading
//     passes the newest cutoff.
//
// A round reads the history twice at most, however many calls it takes,
// in chunks of pruneChunk changes, each its own statement on a read
// connection: none holds a snapshot (and so a checkpoint) or, in a private
// database, the writes (beginRead) for long.
//
// What a round read may be stale by the time it deletes, which is safe: a
// change beyond its namespace's keep stays beyond it as changes are added;
// one another connection deleted is deleted again to no effect (seqs are
// never given twice); a keep changed since the round began makes the
// delete skip that namespace's changes (pruneSQLHistory compares keeps),
// and the next round sees the new keep.

// pruneChunk is how many changes of the history one read statement of a
// round reads.
const pruneChunk = 4096

// Read, on a read connection: every namespace that keeps history, with its
// keep; the newest seq and the keeps, as one JSON text; ?2 changes of the history below seq ?1, newest first; ?3 from
// above seq ?1 up to seq ?2, oldest first.
const (
	pruneStartSQL = `SELECT (SELECT ifnull(max(seq), 0) FROM operational_state_history),
		(SELECT json_group_object(hex(namespace), keep) FROM (SELECT namespace, keep FROM operational_state_history_keep ORDER BY namespace))`
	pruneKeepsSQL    = `SELECT namespace, keep FROM operational_state_history_keep`
	pruneBackwardSQL = `SELECT seq, namespace FROM operational_state_history WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2`
	pruneForwardSQL  = `SELECT seq, namespace FROM operational_state_history WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3`
)

// pruner is a DB's round of PruneHistory, if one is under way, and what
// the last round that ended began with.
type pruner struct {
	mu    sync.Mutex // one PruneHistory at a time
	round *pruneRound
	// last is the history's newest seq and the keeps when the last round
	// that read to its end began; a round is not begun again while both
	// are as they were: it would find nothing to delete.
	last pruneStart
	read int64 // the rows of the history PruneHistory read, for tests
}

// pruneStart is what a round began with.
type pruneStart struct {
	newest int64
	keeps  string // the keeps, as a JSON object
}

// pruneRound is a round of PruneHistory.
type pruneRound struct {
	spaces map[string]*pruneSpace // the namespaces with changes to delete, by spaceKey
	next   int64                  // the reading resumes above this seq
	end    int64                  // and ends at this one: the newest cutoff
	start  pruneStart             // what it began with
}

// pruneSpace is what a round deletes of one namespace.
type pruneSpace struct {
	namespace any   // as stored: a namespace written by hand may be no text
	keep      int64 // its keep when the round began; 0: none
	count     int64 // its changes counted so far
	cutoff    int64 // its changes up to this seq are deleted; 0: none
}

// spaceKey is the map key of a namespace as stored: text and a blob of the
// same bytes are different namespaces to SQLite.
func spaceKey(ns any) string {
	if b, ok := ns.([]byte); ok {
		return "b" + string(b)
	}
	return "t" + text(ns)
}

// PruneHistory deletes at most limit changes beyond their namespace's
// keep, or of a namespace that keeps none, in one transaction, and
// returns how many it deleted; fewer than limit when the round it belongs
// to is done (see above). The newest change of the history is emptied
// instead, and left to no namespace. ctx ends a wait for another
// connection's lock, as it ends [DB.Apply]'s.
func (db *DB) PruneHistory(ctx context.Context, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	db.prune.mu.Lock()
	defer db.prune.mu.Unlock()
	var start pruneStart
	err := db.pruneRead(ctx, pruneStartSQL, nil, func(rows *sql.Rows) error {
		return rows.Scan(&start.newest, &start.keeps)
	})
	if err != nil {
		return 0, err
	}
	r := db.prune.round
	if r != nil && r.start.keeps != start.keeps {
		r = nil // a keep changed: the round's cutoffs may delete too few
	}
	if r == nil {
		db.prune.round = nil
		if start == db.prune.last {
			return 0, nil
		}
		if r, err = db.beginPruneRound(ctx); err != nil {
			return 0, err
		}
		if r == nil {
			db.prune.last = start
			return 0, nil
		}
		r.start = start
		db.prune.round = r
	}
	targets, done, err := db.pruneTargets(ctx, r, limit)
	if err != nil || done {
		db.prune.round = nil
	}
	if err != nil {
		return 0, err
	}
	if len(targets) == 0 { // done
		db.prune.last = r.start
		return 0, nil
	}
	var n int64
	err = db.writeStmts(ctx, func(wc *writeConn) error {
		n = 0
		bg := context.Background()
		if _, err := wc.exec(bg, wc.begin); err != nil {
			return err
		}
		err := func() error {
			for _, t := range targets {
				for _, st := range []driver.Stmt{wc.pruneHistory, wc.emptyHistory} {
					d, err := wc.exec(bg, st, t.namespace, t.seqs, t.keep)
					if err != nil {
						return err
					}
					n += d
				}
			}
			return nil
		}()
		if err == nil {
			_, err = wc.exec(bg, wc.commit)
		}
		if err != nil {
			wc.exec(bg, wc.rollback)
		}
		return err
	})
	if err != nil {
		db.prune.round = nil
		return 0, err
	}
	if done {
		db.prune.last = r.start
	}
	return int(n), nil
}

// beginPruneRound reads the keeps and the history, newest first, and
// returns the round that deletes what lies beyond them; nil when nothing
// does.
func (db *DB) beginPruneRound(ctx context.Context) (*pruneRound, error) {
	keeps := make(map[string]int64)
	err := db.pruneRead(ctx, pruneKeepsSQL, nil, func(rows *sql.Rows) error {
		var ns any
		var keep int64
		if err := rows.Scan(&ns, &keep); err != nil {
			return err
		}
		keeps[spaceKey(ns)] = keep
		return nil
	})
	if err != nil {
		return nil, err
	}
	r := &pruneRound{spaces: make(map[string]*pruneSpace)}
	seen := make(map[string]*pruneSpace)
	for below := int64(math.MaxInt64); ; {
		var read int
		err := db.pruneRead(ctx, pruneBackwardSQL, []any{below, pruneChunk}, func(rows *sql.Rows) error {
			var seq int64
			var ns any
			if err := rows.Scan(&seq, &ns); err != nil {
				return err
			}
			read++
			below = seq
			if s, ok := ns.(string); ok && s == "" {
				return nil // the emptied newest change
			}
			k := spaceKey(ns)
			sp := seen[k]
			if sp == nil {
				sp = &pruneSpace{namespace: ns, keep: keeps[k]}
				seen[k] = sp
			}
			sp.count++
			if sp.cutoff == 0 && sp.count > sp.keep {
				sp.cutoff = seq
				r.spaces[k] = sp
				r.end = max(r.end, seq)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if read < pruneChunk {
			break
		}
	}
	if len(r.spaces) == 0 {
		return nil, nil
	}
	return r, nil
}

// pruneTarget is what one PruneHistory call deletes of one namespace.
type pruneTarget struct {
	namespace any    // as stored
	keep      int64  // its keep when the round began; 0: none
	seqs      string // the seqs of the changes to delete, as a JSON array
}

// pruneTargets reads the history from where round r stopped, oldest
// first, until it has limit changes to delete or the round is done, and
// says which.
func (db *DB) pruneTargets(ctx context.Context, r *pruneRound, limit int) (targets []pruneTarget, done bool, err error) {
	picked := make(map[*pruneSpace][]int64)
	var order []*pruneSpace
	n := 0
	for n < limit && r.next < r.end {
		var read int
		err := db.pruneRead(ctx, pruneForwardSQL, []any{r.next, r.end, pruneChunk}, func(rows *sql.Rows) error {
			if n == limit {
				return errStopRows
			}
			var seq int64
			var ns any
			if err := rows.Scan(&seq, &ns); err != nil {
				return err
			}
			read++
			r.next = seq
			sp := r.spaces[spaceKey(ns)]
			if sp == nil || seq > sp.cutoff {
				return nil
			}
			if picked[sp] == nil {
				order = append(order, sp)
			}
			picked[sp] = append(picked[sp], seq)
			n++
			return nil
		})
		if err != nil {
			return nil, true, err
		}
		if read < pruneChunk && n < limit {
			r.next = r.end // read to the end
		}
	}
	for _, sp := range order {
		list, _ := json.Marshal(picked[sp])
		targets = append(targets, pruneTarget{namespace: sp.namespace, keep: sp.keep, seqs: string(list)})
	}
	return targets, r.next >= r.end, nil
}

// errStopRows ends a pruneRead early, without error.
var errStopRows = errors.New("stop reading")

// pruneRead runs query on a read connection with args, calling f for each
// row until f returns an error (errStopRows: stop, and no error). The
// caller holds db.prune.mu.
func (db *DB) pruneRead(ctx context.Context, query string, args []any, f func(*sql.Rows) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	defer db.endRead(db.beginRead())
	rows, err := db.pool.QueryContext(context.Background(), query, args...)
	if err != nil {
		return db.classify(err)
	}
	defer rows.Close()
	for rows.Next() {
		db.prune.read++
		if err := f(rows); err == errStopRows {
			return nil
		} else if err != nil {
			return db.classify(err)
		}
	}
	return db.classify(rows.Err())
}
