package opstate

import (
	"time"

	"github.com/d8da9184/opstate/storage"
)

// Item is a live key's value and expiry, as [Store.ListItems] returns it.
type Item struct {
	Value string
	// Expires is when the key expires, in UTC, an instant of the Store's
	// clock (Options.Clock); the zero time means never.
	Expires time.Time
}

// ListItems is [Store.List] with each key's expiry: every live key of
// namespace with its value and expiry, read from the database in one
// snapshot and judged live as List judges it. It makes the same checks
// and returns the same errors as List, and [ErrUnsupported] over a
// backend that cannot list expiries (one that does not implement
// [storage.RowLister]). The map is never nil.
func (s *Store) ListItems(namespace string) (map[string]Item, error) {
	if err := s.checkNames(namespace); err != nil {
		return map[string]Item{}, err
	}
	if err := s.enter(); err != nil {
		return map[string]Item{}, err
	}
	defer s.inFlight.RUnlock()
	rl, ok := s.be.(storage.RowLister)
	if !ok {
		return map[string]Item{}, wrapf(ErrUnsupported, "list %q with expiries", namespace)
	}
	now, err := s.now()
	if err != nil {
		return map[string]Item{}, err
	}
	rows, err := rl.ListRows(s.ctx, namespace, now)
	if err != nil {
		return map[string]Item{}, wrapf(s.readError(err), "list %q", namespace)
	}
	out := make(map[string]Item, len(rows))
	for k, r := range rows {
		out[k] = Item{Value: r.Value, Expires: millisTime(r.ExpiresAt)}
	}
	return out, nil
}
