package opstate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/d8da9184/opstate/storage"
)

// Change history: a namespace can keep, in the database, the history of
// its keys ([Store.SetHistory]): every change to one of them, by anyone —
// this Store, another, another process, the opstate command, plain SQL in
// the sqlite3 shell or psql — is recorded in the transaction that makes it,
// with the value before and after, the time by the database's clock and
// who made it. The choice is stored in the database, so every writer
// honours it. A namespace without history pays for none of it.

// Change is one recorded change of a key, as [Store.History] returns it.
type Change struct {
	// Seq orders the changes of a database: a later commit has a larger
	// Seq. It names the change to [Store.Revert].
	Seq int64
	// Time is when the change was made, by the database's clock, to the
	// millisecond.
	Time           time.Time
	Namespace, Key string
	// Op is OpSet (the key was given a value: Set, SetWithTTL, a
	// conditional write that took effect, an INSERT or UPDATE), OpDelete or
	// OpExpire (the row was deleted after it had expired: by a sweep, or a
	// delete that found it so).
	Op Op
	// Existed reports that the key had a row before the change (live, or
	// expired but not yet deleted); Before and BeforeExpires are that
	// row's value and expiry (zero: never).
	Existed       bool
	Before        string
	BeforeExpires time.Time
	// After and Expires are what an OpSet left: the value and its expiry
	// (zero: never).
	After   string
	Expires time.Time
	// Actor is who made the change: the [Options.Actor] of the Store that
	// wrote it, or the actor of a [Writer] ([Store.As]); "" for a change
	// made by plain SQL (shown as "sql" by the opstate command and page).
	Actor string
}

// changeOf converts the backend's form of a change.
func changeOf(c storage.Change) Change {
	out := Change{Seq: c.Seq, Time: millisTime(c.Time), Namespace: c.Namespace, Key: c.Key,
		Existed: c.Existed, Before: c.Before, BeforeExpires: millisTime(c.BeforeExpiresAt),
		After: c.After, Expires: millisTime(c.ExpiresAt), Actor: c.Actor}
	switch c.Op {
	case storage.ChangeSet:
		out.Op = OpSet
	case storage.ChangeDelete:
		out.Op = OpDelete
	case storage.ChangeExpire:
		out.Op = OpExpire
	}
	return out
}

// millisTime is ms, Unix milliseconds, as a time in UTC; 0 is the zero
// time.
func millisTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// historian returns the Store's backend as a Historian, or ErrUnsupported
// wrapped with what call names.
func (s *Store) historian(call string) (storage.Historian, error) {
	h, ok := s.be.(storage.Historian)
	if !ok {
		return nil, wrapf(ErrUnsupported, "%s", call)
	}
	return h, nil
}

// SetHistory makes namespace keep the history of its keys: from its next
// change on, every change to one of them, by any writer, is recorded, and
// the last keep changes of the namespace are kept (older ones are deleted
// by the sweeper, in bounded batches, off the path of writes). keep 0
// turns the namespace's history off: nothing more is recorded, and what
// was is deleted by the sweeper. The setting is stored in the database: it
// holds for every Store and every writer of it, and until it is changed.
// A negative keep returns [ErrInvalidOption]; a backend that keeps no
// history, [ErrUnsupported].
func (s *Store) SetHistory(namespace string, keep int) error {
	if err := s.checkNames(namespace); err != nil {
		return err
	}
	call := fmt.Sprintf("set history of %q", namespace)
	if keep < 0 {
		return wrapf(fmt.Errorf("%w: negative keep %d", ErrInvalidOption, keep), "%s", call)
	}
	h, err := s.historian(call)
	if err != nil {
		return err
	}
	if uerr := s.using(func() {
		if err = s.refuseDamaged(); err == nil {
			err = s.noteDamage(h.SetHistory(s.ctx, namespace, keep))
		}
	}); uerr != nil {
		return uerr
	}
	if err != nil {
		return wrapf(s.readError(err), "%s", call)
	}
	return nil
}

// HistoryKeeps returns every namespace that keeps history, with how many
// changes it keeps ([Store.SetHistory]); a backend that keeps no history
// returns [ErrUnsupported].
func (s *Store) HistoryKeeps() (map[string]int, error) {
	h, err := s.historian("history keeps")
	if err != nil {
		return nil, err
	}
	var keeps map[string]int
	if uerr := s.using(func() { keeps, err = h.HistoryKeeps(s.ctx) }); uerr != nil {
		return nil, uerr
	}
	if err != nil {
		return nil, wrapf(s.readError(err), "history keeps")
	}
	return keeps, nil
}

// History returns the recorded changes of key in namespace, newest first,
// at most limit of them (limit <= 0: every one kept); key "" returns those
// of every key of the namespace. A namespace that keeps no history returns
// [ErrNoHistory] (what it kept before its history was turned off is no
// longer served); a backend that keeps none, [ErrUnsupported]. ctx ends
// the read early.
func (s *Store) History(ctx context.Context, namespace, key string, limit int) ([]Change, error) {
	return s.HistoryBefore(ctx, namespace, key, 0, limit)
}

// HistoryBefore is [Store.History] from the changes before the change
// before on (Seq < before): the next page of a history after its oldest
// change's Seq. before <= 0 starts from the newest.
func (s *Store) HistoryBefore(ctx context.Context, namespace, key string, before int64, limit int) ([]Change, error) {
	call := fmt.Sprintf("history of %q", namespace)
	if key != "" {
		call = fmt.Sprintf("history of %q/%q", namespace, key)
	}
	cs, err := s.history(ctx, call, namespace, key, before, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Change, len(cs))
	for i, c := range cs {
		out[i] = changeOf(c)
	}
	return out, nil
}

// history reads the changes of namespace (of key, unless ""), with Seq
// below before (<= 0: from the newest), at most limit (<= 0: all), once it
// has checked that namespace keeps history; call names the call in
// errors.
func (s *Store) history(ctx context.Context, call, namespace, key string, before int64, limit int) ([]storage.Change, error) {
	if err := s.checkNames(namespace); err != nil {
		return nil, err
	}
	h, err := s.historian(call)
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = math.MaxInt32
	}
	var cs []storage.Change
	if uerr := s.using(func() {
		var keeps map[string]int
		if keeps, err = h.HistoryKeeps(ctx); err != nil {
			return
		}
		if keeps[namespace] == 0 {
			err = ErrNoHistory
			return
		}
		cs, err = h.History(ctx, namespace, key, before, limit)
	}); uerr != nil {
		return nil, uerr
	}
	if err != nil {
		if !errors.Is(err, ErrNoHistory) {
			err = s.readError(err)
		}
		return nil, wrapf(err, "%s", call)
	}
	return cs, nil
}

// Revert gives key in namespace back the state it had right after change
// seq of its history: the value and expiry that change set, or no row if
// it deleted the key or the key expired. It writes only if the key still
// holds what its latest recorded change left, as a conditional write
// decided by the database: when someone changed the key in between,
// nothing is written and it returns [ErrConflict], saying what the key
// holds now. The revert is itself a change of the history, made by the
// Store's actor ([Options.Actor]; see [Writer.Revert] for another).
//
// A seq that is the key's latest change already writes nothing and
// returns nil, as does a revert to no row of a key that has none. A seq
// that is no recorded change of this key returns [ErrNoChange]; a
// namespace without history, [ErrNoHistory]; a change whose value has
// expired since returns an error saying when, and writes nothing. ctx
// ends the reads of the history early; the write, once begun, is as
// every write.
func (s *Store) Revert(ctx context.Context, namespace, key string, seq int64) error {
	return s.self.Revert(ctx, namespace, key, seq)
}

// Revert is [Store.Revert], recorded as w's actor.
func (w *Writer) Revert(ctx context.Context, namespace, key string, seq int64) error {
	s := w.s
	if err := w.check(namespace, key); err != nil {
		return err
	}
	call := fmt.Sprintf("revert %q/%q to change %d", namespace, key, seq)
	var target storage.Change
	if seq > 0 && seq < math.MaxInt64 {
		cs, err := s.history(ctx, call, namespace, key, seq+1, 1)
		if err != nil {
			return err
		}
		if len(cs) == 1 && cs[0].Seq == seq {
			target = cs[0]
		}
	}
	if target.Seq == 0 {
		return wrapf(ErrNoChange, "%s", call)
	}
	ls, err := s.history(ctx, call, namespace, key, 0, 1)
	if err != nil {
		return err
	}
	if len(ls) == 0 {
		return wrapf(ErrNoChange, "%s", call) // pruned in between
	}
	latest := ls[0]
	if latest.Seq == seq {
		return nil
	}
	now, err := s.now()
	if err != nil {
		return err
	}
	set := target.Op == storage.ChangeSet
	if set && target.ExpiresAt != 0 && target.ExpiresAt <= now {
		return wrapf(fmt.Errorf("the value it set expired at %s", millisTime(target.ExpiresAt).Format(time.RFC3339Nano)), "%s", call)
	}
	// The write is conditional on the key being as its latest change left
	// it: holding its value, live, or absent.
	live := latest.Op == storage.ChangeSet && (latest.ExpiresAt == 0 || latest.ExpiresAt > now)
	pw := storage.Write{Namespace: namespace, Key: key, Actor: w.actor}
	switch {
	case live && set:
		pw.Kind, pw.Old, pw.Value, pw.ExpiresAt = storage.Swap, latest.After, target.After, target.ExpiresAt
	case live:
		pw.Kind, pw.Old = storage.DeleteIf, latest.After
	case set:
		pw.Kind, pw.Value, pw.ExpiresAt = storage.PutIfAbsent, target.After, target.ExpiresAt
	default:
		return nil // absent, as it should be
	}
	res, err := s.writeResult(pw, fmt.Sprintf("revert to change %d", seq))
	if err != nil {
		return err
	}
	if res.Changed {
		return nil
	}
	holds := "no value"
	if res.Found {
		holds = fmt.Sprintf("%q", res.Held.Value)
		if res.Held.ExpiresAt != 0 && res.Held.ExpiresAt <= now {
			holds += " (expired)"
		}
	}
	return wrapf(fmt.Errorf("%w change %d: the key holds %s", ErrConflict, latest.Seq, holds), "%s", call)
}
