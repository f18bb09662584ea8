package serve

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/d8da9184/opstate"
)

// revert answers POST /v1/namespaces/{ns}/keys/{key}/revert?seq=N: the
// key is given back the state it had after its change N (the value and
// expiry set, or absent after a delete or expiry), recorded as a change
// by wr's actor. 204 when done or when N is the key's latest change.
//
// With If-Match: "ETAG" (the value the client saw) or If-None-Match: *
// (it saw none), the write is conditional on that: a compare-and-swap,
// compare-and-delete or set-if-absent against the value tagged, so that
// it never overwrites a change made since the client looked (412, nothing
// changed). Without either, it is [opstate.Store.Revert]: conditional on
// the key's latest recorded change, 409 when the key changed since.
// 404 for a namespace without history or a seq that is not a change of
// the key; 409 for a value that has expired since.
func (s *Server) revert(w http.ResponseWriter, r *http.Request, ns, key string, wr *opstate.Writer) {
	q := r.URL.Query()
	if len(q) != 1 || len(q["seq"]) != 1 {
		writeError(w, http.StatusBadRequest, "revert takes one query parameter, seq")
		return
	}
	seq, err := strconv.ParseInt(q.Get("seq"), 10, 64)
	if err != nil || seq < 1 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("seq %s is not a positive sequence number", strconv.Quote(q.Get("seq"))))
		return
	}
	im, inm := r.Header.Get("If-Match"), r.Header.Get("If-None-Match")
	switch {
	case im != "" && inm != "":
		writeError(w, http.StatusBadRequest, "If-Match and If-None-Match together are not taken")
		return
	case inm != "" && inm != "*":
		writeError(w, http.StatusBadRequest, "If-None-Match on revert takes only *")
		return
	case im == "" && inm == "":
		err := wr.Revert(r.Context(), ns, key, seq)
		s.wroteFlags(ns)
		if err != nil {
			writeHistoryError(w, ns, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	cond := parseETags(im)
	if im != "" && !cond.any && len(cond.tags) == 0 {
		writeError(w, http.StatusBadRequest, "If-Match holds no entity tag")
		return
	}
	done, err := s.revertIf(r.Context(), ns, key, seq, wr, cond, inm != "")
	s.wroteFlags(ns)
	if err != nil {
		writeHistoryError(w, ns, err)
		return
	}
	if !done {
		writePrecondition(w, ns, key, inm != "")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// revertIf reverts key to its state after change seq if the key is as
// the client saw it: absent (ifAbsent), or holding the value cond tags.
// done is false, and nothing changed, when it is not.
func (s *Server) revertIf(ctx context.Context, ns, key string, seq int64, wr *opstate.Writer, cond etagList, ifAbsent bool) (done bool, err error) {
	target, err := s.changeOf(ctx, ns, key, seq)
	if err != nil {
		return false, err
	}
	latest, err := s.store.History(ctx, ns, key, 1)
	if err != nil {
		return false, err
	}
	if len(latest) == 1 && latest[0].Seq == seq {
		return true, nil // the key is in that state already, as far as its history tells
	}
	var ttl time.Duration
	set := target.Op == opstate.OpSet
	if set && !target.Expires.IsZero() {
		if ttl = time.Until(target.Expires); ttl <= 0 {
			return false, fmt.Errorf("%w: the value of change %d expired at %s; nothing was written",
				opstate.ErrConflict, seq, target.Expires.UTC().Format(time.RFC3339))
		}
	}
	if ifAbsent {
		switch {
		case !set: // absent, as wanted, if still absent
			_, ok, err := s.store.Lookup(ns, key)
			return !ok, err
		case ttl > 0:
			return wr.SetIfAbsentWithTTL(ns, key, target.After, ttl)
		default:
			return wr.SetIfAbsent(ns, key, target.After)
		}
	}
	return s.swap(ns, key, cond, func(old string) (bool, error) {
		switch {
		case !set:
			return wr.CompareAndDelete(ns, key, old)
		case ttl > 0:
			return wr.CompareAndSwapWithTTL(ns, key, old, target.After, ttl)
		default:
			return wr.CompareAndSwap(ns, key, old, target.After)
		}
	})
}

// changeOf returns change seq of ns/key, or an error matching
// opstate.ErrNoChange when seq is not a recorded change of that key.
func (s *Server) changeOf(ctx context.Context, ns, key string, seq int64) (opstate.Change, error) {
	cs, err := s.store.HistoryBefore(ctx, ns, key, seq+1, 1)
	if err != nil {
		return opstate.Change{}, err
	}
	if len(cs) != 1 || cs[0].Seq != seq {
		return opstate.Change{}, fmt.Errorf("%w: %d is not a change of key %s of namespace %s",
			opstate.ErrNoChange, seq, strconv.Quote(key), strconv.Quote(ns))
	}
	return cs[0], nil
}
