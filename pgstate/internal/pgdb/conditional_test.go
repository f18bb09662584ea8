package pgdb_test

import (
	"testing"
	"time"

	"github.com/d8da9184/opstate/storage"
)

// TestConditional runs each conditional write against each state a key can
// be in (missing, live with the expected value, live with another, expired
// by the server's clock with the expected value), alone and in a batch, and
// checks what it changed, what it stored and what it reports it found.
// The expired state is set behind the DB's back by the server's clock
// while the caller's clock says the row is alive: a write that judged by
// the caller's now would get it wrong.
func TestConditional(t *testing.T) {
	type state struct {
		exists bool
		value  string
		ttl    time.Duration // by the server's clock; negative: expired
	}
	missing := state{}
	liveOld := state{true, "old", 0}
	liveOldTTL := state{true, "old", time.Hour}
	liveOther := state{true, "other", 0}
	expiredOld := state{true, "old", -time.Second}
	emptyValue := state{true, "", 0}
	tests := []struct {
		name    string
		before  state
		w       storage.Write
		ttl     time.Duration // of the write
		changed bool
		after   state
	}{
		{"put-if-absent/missing", missing, storage.Write{Kind: storage.PutIfAbsent, Value: "new"}, 0, true, state{true, "new", 0}},
		{"put-if-absent/live", liveOld, storage.Write{Kind: storage.PutIfAbsent, Value: "new"}, 0, false, liveOld},
		{"put-if-absent/live-ttl", liveOldTTL, storage.Write{Kind: storage.PutIfAbsent, Value: "new"}, 0, false, liveOldTTL},
		{"put-if-absent/expired", expiredOld, storage.Write{Kind: storage.PutIfAbsent, Value: "new"}, time.Minute, true, state{true, "new", time.Minute}},
		{"put-if-absent/empty-value-is-present", emptyValue, storage.Write{Kind: storage.PutIfAbsent, Value: "new"}, 0, false, emptyValue},
		{"swap/missing", missing, storage.Write{Kind: storage.Swap, Old: "old", Value: "new"}, 0, false, missing},
		{"swap/match", liveOldTTL, storage.Write{Kind: storage.Swap, Old: "old", Value: "new"}, 0, true, state{true, "new", 0}},
		{"swap/match-ttl", liveOld, storage.Write{Kind: storage.Swap, Old: "old", Value: "new"}, time.Minute, true, state{true, "new", time.Minute}},
		{"swap/other", liveOther, storage.Write{Kind: storage.Swap, Old: "old", Value: "new"}, 0, false, liveOther},
		{"swap/expired", expiredOld, storage.Write{Kind: storage.Swap, Old: "old", Value: "new"}, 0, false, expiredOld},
		{"swap/empty-old", emptyValue, storage.Write{Kind: storage.Swap, Old: "", Value: "new"}, 0, true, state{true, "new", 0}},
		{"swap/empty-old-missing", missing, storage.Write{Kind: storage.Swap, Old: "", Value: "new"}, 0, false, missing},
		{"swap/prefix", liveOld, storage.Write{Kind: storage.Swap, Old: "ol", Value: "new"}, 0, false, liveOld},
		{"swap/case", liveOld, storage.Write{Kind: storage.Swap, Old: "OLD", Value: "new"}, 0, false, liveOld},
		{"delete-if/match", liveOldTTL, storage.Write{Kind: storage.DeleteIf, Old: "old"}, 0, true, missing},
		{"delete-if/other", liveOther, storage.Write{Kind: storage.DeleteIf, Old: "old"}, 0, false, liveOther},
		{"delete-if/missing", missing, storage.Write{Kind: storage.DeleteIf, Old: "old"}, 0, false, missing},
		{"delete-if/expired", expiredOld, storage.Write{Kind: storage.DeleteIf, Old: "old"}, 0, false, expiredOld},
	}
	dsn, raw := server(t)
	db := openDSN(t, dsn, pgdbOptions())
	for _, tt := range tests {
		for _, batched := range []bool{false, true} {
			name := tt.name
			if batched {
				name += "/batched"
			}
			t.Run(name, func(t *testing.T) {
				ns := name // each subtest a namespace of its own
				if tt.before.exists {
					rawPut(t, raw, ns, "k", tt.before.value, tt.before.ttl)
				}
				// The caller's clock is a day behind: every judgment
				// must be the server's.
				now := localNow() - 24*time.Hour.Milliseconds()
				w := tt.w
				w.Namespace, w.Key = ns, "k"
				if tt.ttl != 0 {
					w.ExpiresAt = now + tt.ttl.Milliseconds()
				}
				ws := []storage.Write{w}
				if batched {
					ws = append(ws, putW(ns, "other", "x", 0, now))
				}
				r := apply(t, db, now, ws...)[0]
				if r.Changed != tt.changed {
					t.Errorf("Changed = %v; want %v", r.Changed, tt.changed)
				}
				checkState(t, raw, ns, "k", tt.after.exists, tt.after.value, tt.after.ttl)
				// A write that changed nothing reports what it found.
				switch {
				case tt.changed && r.Found:
					t.Errorf("Found = true after a write that changed its row")
				case !tt.changed && r.Found != tt.before.exists:
					t.Errorf("Found = %v; want %v", r.Found, tt.before.exists)
				case !tt.changed && r.Found:
					if r.Held.Value != tt.before.value {
						t.Errorf("Held.Value = %q; want %q", r.Held.Value, tt.before.value)
					}
					checkExpiry(t, raw, "Held.ExpiresAt", r.Held.ExpiresAt, tt.before.ttl)
				}
			})
		}
	}
}

// checkState checks the row of ns/key behind the DB's back: its value and
// its remaining life by the server's clock, within a second of ttl
// (expired rows: below zero).
func checkState(t *testing.T, raw rawPool, ns, key string, exists bool, value string, ttl time.Duration) {
	t.Helper()
	got, left, found := rawGet(t, raw, ns, key)
	if found != exists || got != value {
		t.Errorf("row %q/%q = %q, %v; want %q, %v", ns, key, got, found, value, exists)
		return
	}
	if !found {
		return
	}
	want := ttl.Milliseconds()
	switch {
	case ttl == 0 && left != 0, ttl < 0 && left >= 0, ttl > 0 && (left > want || left < want-1000):
		t.Errorf("row %q/%q expires in %d ms; want %d", ns, key, left, want)
	}
}

// checkExpiry checks an ExpiresAt the DB returned against a row's life of
// ttl by the server's clock, within a second.
func checkExpiry(t *testing.T, raw rawPool, what string, got int64, ttl time.Duration) {
	t.Helper()
	if ttl == 0 {
		if got != 0 {
			t.Errorf("%s = %d; want 0 (no expiry)", what, got)
		}
		return
	}
	want := serverNow(t, raw) + ttl.Milliseconds()
	if got > want || got < want-1000 {
		t.Errorf("%s = %d; want about %d (server now %+v)", what, got, want, ttl)
	}
}
