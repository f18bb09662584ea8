package opstate

import (
	"fmt"
	"time"

	"github.com/d8da9184/opstate/storage"
)

// The Store keeps time as Unix milliseconds, the precision of what it
// stores, within the years 0000 to 9999, which SQLite's date functions
// read: every time Options.Clock can return, time.Time{} (the year 1)
// included, has a place, and no arithmetic on it overflows. A clock before
// the year 0000 reads as its first millisecond, a clock after 9999 as its
// last, and expiries are capped there.

// readClock calls Options.Clock. A panic in it becomes an error that names
// it: the Clock is called by the committer's leader on behalf of other
// callers, and from background goroutines, where a panic would take the
// process down or leave writers waiting, and every method reports it the
// same way.
func (s *Store) readClock() (t time.Time, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("opstate: Options.Clock panicked: %v", r)
		}
	}()
	return s.clock(), nil
}

// now returns the clock's time in Unix milliseconds.
func (s *Store) now() (int64, error) {
	t, err := s.readClock()
	return millis(t), err
}

// millis returns t in Unix milliseconds, clamped to the years 0000-9999.
func millis(t time.Time) int64 {
	switch sec := t.Unix(); {
	case sec < storage.EarliestMillis/1000:
		return storage.EarliestMillis
	case sec > storage.LatestMillis/1000:
		return storage.LatestMillis
	default:
		return sec*1000 + int64(t.Nanosecond())/int64(time.Millisecond)
	}
}

// expiry returns the time ttl (positive) after t in Unix milliseconds,
// rounded up to a whole millisecond and capped at the latest one.
func expiry(t time.Time, ttl time.Duration) int64 {
	const ms = int64(time.Millisecond)
	now, sub := millis(t), int64(0)
	if now > storage.EarliestMillis && now < storage.LatestMillis {
		sub = int64(t.Nanosecond()) % ms // how far t is past now
	}
	// d = ceil((sub + ttl) / ms), computed without overflow.
	d := int64(ttl) / ms
	if r := int64(ttl)%ms + sub; r > 0 {
		d += (r + ms - 1) / ms
	}
	if d > storage.LatestMillis-now {
		return storage.LatestMillis
	}
	exp := now + d
	if exp == 0 {
		exp = 1 // 0 means "never": a key due at the epoch itself expires a millisecond later
	}
	return exp
}
