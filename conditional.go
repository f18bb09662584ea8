package opstate

import (
	"fmt"
	"time"
)

// The conditional writes are each decided by SQLite, inside the write's own
// transaction, by one statement whose count of changed rows is the answer:
// never by a read in Go followed by a write. They join group commit like
// every write. A key that is missing or has expired is absent; the empty
// string is a value like any other. A write whose condition fails changes
// nothing in SQLite, and refreshes this Store's cached entry for the key
// from what the statement found, so that a loop of Get and CompareAndSwap
// converges at once even when another process changed the key and this
// Store has not noticed yet.

// SetIfAbsent stores value under key in namespace if the key is absent
// (missing or expired), and reports whether it did. Like [Store.Set], the
// key then never expires.
func (s *Store) SetIfAbsent(namespace, key, value string) (stored bool, err error) {
	return s.self.SetIfAbsent(namespace, key, value)
}

// SetIfAbsentWithTTL is like [Store.SetIfAbsent], and the key, if stored,
// expires ttl from now, as with [Store.SetWithTTL]: the way to acquire a
// lease. A ttl <= 0 returns [ErrInvalidTTL].
func (s *Store) SetIfAbsentWithTTL(namespace, key, value string, ttl time.Duration) (stored bool, err error) {
	return s.self.SetIfAbsentWithTTL(namespace, key, value, ttl)
}

// CompareAndSwap replaces the value of key in namespace with new if the
// key is live (present and not expired) and holds old, and reports whether
// it did. Like [Store.Set], it clears any expiry.
func (s *Store) CompareAndSwap(namespace, key, old, new string) (swapped bool, err error) {
	return s.self.CompareAndSwap(namespace, key, old, new)
}

// CompareAndSwapWithTTL is like [Store.CompareAndSwap], and the key, if
// swapped, expires ttl from now: the way to renew a lease. A ttl <= 0
// returns [ErrInvalidTTL].
func (s *Store) CompareAndSwapWithTTL(namespace, key, old, new string, ttl time.Duration) (swapped bool, err error) {
	return s.self.CompareAndSwapWithTTL(namespace, key, old, new, ttl)
}

// CompareAndDelete deletes key from namespace if the key is live and holds
// old, and reports whether it did: the way to release a lease only while
// holding it.
func (s *Store) CompareAndDelete(namespace, key, old string) (deleted bool, err error) {
	return s.self.CompareAndDelete(namespace, key, old)
}

// ttlExpiry checks the names and ttl of a call that sets an expiry, and
// returns the expiry, ttl from now.
func (s *Store) ttlExpiry(ttl time.Duration, names ...string) (int64, error) {
	if err := s.checkNames(names...); err != nil {
		return 0, err
	}
	if ttl <= 0 {
		return 0, fmt.Errorf("%w: %v", ErrInvalidTTL, ttl)
	}
	now, err := s.readClock()
	if err != nil {
		return 0, err
	}
	return expiry(now, ttl), nil
}
