package pgdb

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/d8da9184/opstate/storage"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// expiresSQL is the expires_at of a write whose expiry is $4 milliseconds
// after the server's now(), or NULL for none (see "Clock" in doc.go).
const expiresSQL = `now() + $4::bigint * interval '1 millisecond'`

const (
	putSQL = `INSERT INTO operational_state (namespace, key, value, updated_at, expires_at)
	VALUES ($1, $2, $3, now(), ` + expiresSQL + `)
	ON CONFLICT (namespace, key) DO UPDATE SET
	value = excluded.value, updated_at = excluded.updated_at, expires_at = excluded.expires_at`
	// putManySQL is putSQL for many rows, given as arrays: namespaces $1,
	// keys $2, values $3 and expiries $4 (milliseconds from now(), NULL
	// for none). No key may appear twice.
	putManySQL = `INSERT INTO operational_state (namespace, key, value, updated_at, expires_at)
	SELECT n, k, v, now(), now() + e * interval '1 millisecond'
	FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS t(n, k, v, e)
	ON CONFLICT (namespace, key) DO UPDATE SET
	value = excluded.value, updated_at = excluded.updated_at, expires_at = excluded.expires_at`
	// putIfAbsentSQL changes a row exactly when the key was absent: no
	// row, or one expired by the server's clock.
	putIfAbsentSQL = putSQL + ` WHERE operational_state.expires_at <= now()`
	// swapSQL and deleteIfSQL compare values as bytes (COLLATE "C").
	swapSQL = `UPDATE operational_state SET value = $3, updated_at = now(), expires_at = ` + expiresSQL + `
	WHERE namespace = $1 AND key = $2 AND value = $5 COLLATE "C" AND ` + live
	deleteIfSQL = `DELETE FROM operational_state
	WHERE namespace = $1 AND key = $2 AND value = $3 COLLATE "C" AND ` + live
	deleteSQL   = `DELETE FROM operational_state WHERE namespace = $1 AND key = $2`
	deleteNSSQL = `DELETE FROM operational_state WHERE namespace = $1`
	// heldSQL reads what a conditional write that changed nothing found,
	// after it, in the same transaction; FOR SHARE keeps the row as read
	// until the commit.
	heldSQL = `SELECT value, ` + expiryMillis + `, ` + serverMillis + ` FROM operational_state WHERE namespace = $1 AND key = $2 FOR SHARE`
)

// Apply runs ws in one transaction, in order, and returns when it has
// committed, with what each write did (results[i] is ws[i]'s); if
// anything fails, it returns nil results and nothing of ws is applied. The batch goes
// to the server in one round trip: one pipeline, which PostgreSQL runs as
// one implicit transaction. Consecutive Puts share one statement (their
// rows as arrays), so that the trigger runs, and notifies, once for them;
// every other write has a statement of its own, whose affected rows
// decide its result's Changed; a conditional write that changed nothing
// reads Held and Found in the statement after it.
//
// now (Unix milliseconds, the caller's clock) only turns each ExpiresAt
// into a duration from the server's now(). A write that would store a
// string text cannot hold fails the whole batch with [ErrInvalidText]
// before anything is sent.
func (db *DB) Apply(ctx context.Context, now int64, ws []storage.Write) ([]storage.Result, error) {
	for i := range ws {
		if err := check(&ws[i]); err != nil {
			return nil, err
		}
	}
	res := make([]storage.Result, len(ws))
	b := &pgx.Batch{}
	// The batch's first statement names the transaction and sets the
	// actor of its first write; a write by another actor sets its own
	// first (a skip step).
	actor := ""
	if len(ws) > 0 {
		actor = ws[0].Actor
	}
	b.Queue(applyOriginSQL, db.origin, actor, namespaces(ws))
	// A step is the result of one statement: that of the write it decides
	// (res[i]), or those of the run of n Puts of one statement (res[i:i+n]),
	// or (held) the row a conditional write found, or (skip) nothing.
	type step struct {
		i, n int
		held bool
		skip bool
	}
	var steps []step
	for i := 0; i < len(ws); i++ {
		w := &ws[i]
		var exp any // NULL: no expiry
		if w.ExpiresAt != 0 {
			exp = w.ExpiresAt - now
		}
		if !storable(w.Namespace) || !storable(w.Key) {
			continue // a Delete, DeleteNamespace or DeleteIf of what cannot exist (check)
		}
		if w.Actor != actor {
			actor = w.Actor
			b.Queue(actorSQL, actor)
			steps = append(steps, step{skip: true})
		}
		switch w.Kind {
		case storage.Put:
			n := putRun(ws[i:])
			if n > 1 {
				b.Queue(putManySQL, putArgs(now, ws[i:i+n])...)
				steps = append(steps, step{i: i, n: n})
				i += n - 1
				continue
			}
			b.Queue(putSQL, w.Namespace, w.Key, w.Value, exp)
		case storage.Delete:
			b.Queue(deleteSQL, w.Namespace, w.Key)
		case storage.DeleteNamespace:
			b.Queue(deleteNSSQL, w.Namespace)
		case storage.PutIfAbsent:
			b.Queue(putIfAbsentSQL, w.Namespace, w.Key, w.Value, exp)
		case storage.Swap, storage.DeleteIf:
			if storable(w.Old) {
				if w.Kind == storage.Swap {
					b.Queue(swapSQL, w.Namespace, w.Key, w.Value, exp, w.Old)
				} else {
					b.Queue(deleteIfSQL, w.Namespace, w.Key, w.Old)
				}
				steps = append(steps, step{i: i})
			}
			// An Old nothing can hold: the condition fails without asking.
			b.Queue(heldSQL, w.Namespace, w.Key)
			steps = append(steps, step{i: i, held: true})
			continue
		default:
			return nil, fmt.Errorf("opstate: unknown write kind %d", w.Kind)
		}
		steps = append(steps, step{i: i})
		if w.Kind == storage.PutIfAbsent {
			b.Queue(heldSQL, w.Namespace, w.Key)
			steps = append(steps, step{i: i, held: true})
		}
	}
	if len(steps) == 0 { // a skip step comes only before a write's
		return res, nil
	}
	err := db.run(ctx, b, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		clear(res)
		for _, s := range steps {
			if s.skip {
				if _, err := br.Exec(); err != nil {
					return err
				}
				continue
			}
			r := &res[s.i]
			if !s.held {
				tag, err := br.Exec()
				if err != nil {
					return err
				}
				if s.n > 0 {
					for j := range s.n {
						res[s.i+j].Changed = true // an upsert always changes its row
					}
					continue
				}
				r.Changed = tag.RowsAffected() > 0
				continue
			}
			var row storage.Row
			var exp *int64
			var srv int64
			err := br.QueryRow().Scan(&row.Value, &exp, &srv)
			if err == pgx.ErrNoRows || r.Changed {
				continue
			}
			if err != nil {
				return err
			}
			row.ExpiresAt = db.local(exp, srv)
			r.Held, r.Found = row, true
		}
		return nil
	})
	if err != nil {
		return nil, classify(err)
	}
	return res, nil
}

// namespaces returns the namespaces of ws that text can hold, each once:
// those whose rows the batch may change.
func namespaces(ws []storage.Write) []string {
	out := make([]string, 0, 1)
	var seen map[string]bool // once out is long enough for a linear search to cost
	for i := range ws {
		ns := ws[i].Namespace
		switch {
		case seen != nil && seen[ns], seen == nil && slices.Contains(out, ns), !storable(ns):
			continue
		case seen == nil && len(out) == 16:
			seen = make(map[string]bool)
			for _, n := range out {
				seen[n] = true
			}
		}
		if seen != nil {
			seen[ns] = true
		}
		out = append(out, ns)
	}
	return out
}

// putRun returns how many of the writes ws begins with, at least one,
// can share one statement: Puts of one actor, each of another key (a
// statement's upsert cannot change a row twice, and history records
// every Put).
func putRun(ws []storage.Write) int {
	n := 1
	if len(ws) < 2 || ws[1].Kind != storage.Put || ws[1].Actor != ws[0].Actor {
		return n // the common case, without the map
	}
	seen := map[storage.Key]bool{{Namespace: ws[0].Namespace, Key: ws[0].Key}: true}
	for ; n < len(ws); n++ {
		w := &ws[n]
		k := storage.Key{Namespace: w.Namespace, Key: w.Key}
		if w.Kind != storage.Put || w.Actor != ws[0].Actor || seen[k] {
			break
		}
		seen[k] = true
	}
	return n
}

// putArgs returns the arguments of putManySQL for a run of Puts, which
// putRun made: no key appears twice.
func putArgs(now int64, puts []storage.Write) []any {
	nss := make([]string, 0, len(puts))
	keys := make([]string, 0, len(puts))
	vals := make([]string, 0, len(puts))
	exps := make([]*int64, 0, len(puts))
	for _, w := range puts {
		var exp *int64
		if w.ExpiresAt != 0 {
			e := w.ExpiresAt - now
			exp = &e
		}
		nss, keys, vals, exps = append(nss, w.Namespace), append(keys, w.Key), append(vals, w.Value), append(exps, exp)
	}
	return []any{nss, keys, vals, exps}
}

// run sends b as one pipeline on a connection of the pool and reads its
// results with read; the batch's implicit transaction commits at its end
// unless a statement failed. A batch that ctx has ended before it begins
// is not sent: run returns ctx's error.
//
// When ctx ends while the batch runs (a Store's Close, while the batch
// waits for a row another transaction locks), run asks the server to
// cancel it and waits for the server's verdict, which the batch's results
// give: a batch the server canceled was rolled back, and run returns an
// error that matches ctx.Err(); one that had committed already returns
// nil. pgx, given ctx itself, would return ctx's error at once and close
// the connection, whatever the server did next: the batch could commit
// after all, its client gone. The wait for the verdict is bounded by the
// DB's CallTimeout; the connection is not used again, since the cancel
// request could still reach its next statement.
func (db *DB) run(ctx context.Context, b *pgx.Batch, read func(pgx.BatchResults) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// Nothing is sent while a connection is awaited: ctx may end that
	// wait.
	actx, acancel := db.bound(ctx)
	c, err := db.pool.Acquire(actx)
	err = db.timedOut(actx, err)
	acancel()
	if err != nil {
		return err
	}
	defer c.Release()
	cctx, cancel := db.bound(context.WithoutCancel(ctx))
	defer cancel()
	sent := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(sent)
		c.Conn().PgConn().CancelRequest(cctx)
	})
	br := c.SendBatch(cctx, b)
	err = read(br)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if !stop() { // the cancel request was sent, or is being sent
		<-sent
		c.Conn().Close(cctx) // Release then drops it from the pool
		if canceled(err) {
			return fmt.Errorf("opstate: batch canceled and rolled back: %w", ctx.Err())
		}
	}
	return db.timedOut(cctx, err)
}

// canceled reports whether err is the server's query_canceled: the
// statement was canceled, and its transaction rolled back.
func canceled(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "57014"
}

// check refuses a write that would store a string text cannot hold.
func check(w *storage.Write) error {
	if !storable(w.Actor) {
		return fmt.Errorf("%w: actor %q", ErrInvalidText, w.Actor)
	}
	stores := w.Kind == storage.Put || w.Kind == storage.PutIfAbsent || w.Kind == storage.Swap
	if !stores {
		return nil
	}
	for _, s := range []struct{ what, v string }{{"namespace", w.Namespace}, {"key", w.Key}, {"value", w.Value}} {
		if !storable(s.v) {
			return fmt.Errorf("%w: %s %q", ErrInvalidText, s.what, s.v)
		}
	}
	return nil
}

// sweepSQL deletes at most $1 rows expired by the server's clock, earliest
// first, skipping rows another transaction holds (another agent's sweep
// or a write), and returns their keys.
const sweepSQL = `DELETE FROM operational_state WHERE (namespace, key) IN (
	SELECT namespace, key FROM operational_state
	WHERE expires_at <= now()
	ORDER BY expires_at LIMIT $1
	FOR UPDATE SKIP LOCKED)
	RETURNING namespace, key`

// DeleteExpired deletes at most limit rows expired by the server's clock,
// earliest first, in one statement, and returns their keys. Sweeps of many
// agents at once skip each other's rows: each expired row is deleted, and
// returned, by one of them. now is not used: the server judges.
func (db *DB) DeleteExpired(ctx context.Context, now int64, limit int) ([]storage.Key, error) {
	b := &pgx.Batch{}
	b.Queue(originSQL, db.origin, db.actor)
	b.Queue(sweepSQL, limit)
	var keys []storage.Key
	err := db.run(ctx, b, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		keys, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Key, error) {
			var k storage.Key
			err := r.Scan(&k.Namespace, &k.Key)
			return k, err
		})
		return err
	})
	if err != nil {
		return nil, classify(err)
	}
	return keys, nil
}
