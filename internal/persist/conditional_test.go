package persist_test

import (
	"testing"

	"github.com/d8da9184/opstate/internal/persist"
)

// TestConditional runs each conditional write against each state a key can
// be in: missing, live with the expected value, live with another, expired
// with the expected value; and checks what it changed and what it reports.
func TestConditional(t *testing.T) {
	now := t0 + 1000
	type state struct {
		exists bool
		value  string
		exp    int64
	}
	missing := state{}
	liveOld := state{true, "old", 0}
	liveOldTTL := state{true, "old", now + 1}
	liveOther := state{true, "other", 0}
	expiredOld := state{true, "old", now} // an expiry at now has passed
	emptyValue := state{true, "", 0}
	tests := []struct {
		name    string
		before  state
		w       persist.Write
		changed bool
		after   state
	}{
		{"put-if-absent/missing", missing, persist.Write{Kind: persist.PutIfAbsent, Value: "new"}, true, state{true, "new", 0}},
		{"put-if-absent/live", liveOld, persist.Write{Kind: persist.PutIfAbsent, Value: "new"}, false, liveOld},
		{"put-if-absent/live-ttl", liveOldTTL, persist.Write{Kind: persist.PutIfAbsent, Value: "new"}, false, liveOldTTL},
		{"put-if-absent/expired", expiredOld, persist.Write{Kind: persist.PutIfAbsent, Value: "new", ExpiresAt: now + 5}, true, state{true, "new", now + 5}},
		{"put-if-absent/empty-value-is-present", emptyValue, persist.Write{Kind: persist.PutIfAbsent, Value: "new"}, false, emptyValue},
		{"swap/missing", missing, persist.Write{Kind: persist.Swap, Old: "old", Value: "new"}, false, missing},
		{"swap/match", liveOldTTL, persist.Write{Kind: persist.Swap, Old: "old", Value: "new"}, true, state{true, "new", 0}},
		{"swap/match-ttl", liveOld, persist.Write{Kind: persist.Swap, Old: "old", Value: "new", ExpiresAt: now + 9}, true, state{true, "new", now + 9}},
		{"swap/other", liveOther, persist.Write{Kind: persist.Swap, Old: "old", Value: "new"}, false, liveOther},
		{"swap/expired", expiredOld, persist.Write{Kind: persist.Swap, Old: "old", Value: "new"}, false, expiredOld},
		{"swap/empty-old", emptyValue, persist.Write{Kind: persist.Swap, Old: "", Value: "new"}, true, state{true, "new", 0}},
		{"swap/empty-old-missing", missing, persist.Write{Kind: persist.Swap, Old: "", Value: "new"}, false, missing},
		{"swap/prefix", liveOld, persist.Write{Kind: persist.Swap, Old: "ol", Value: "new"}, false, liveOld},
		{"delete-if/match", liveOldTTL, persist.Write{Kind: persist.DeleteIf, Old: "old"}, true, missing},
		{"delete-if/other", liveOther, persist.Write{Kind: persist.DeleteIf, Old: "old"}, false, liveOther},
		{"delete-if/missing", missing, persist.Write{Kind: persist.DeleteIf, Old: "old"}, false, missing},
		{"delete-if/expired", expiredOld, persist.Write{Kind: persist.DeleteIf, Old: "old"}, false, expiredOld},
	}
	for _, tt := range tests {
		for _, batched := range []bool{false, true} {
			name := tt.name
			if batched {
				name += "/batched"
			}
			t.Run(name, func(t *testing.T) {
				db := mustOpen(t, "")
				if tt.before.exists {
					apply(t, db, t0, putW("ns", "k", tt.before.value, tt.before.exp))
				}
				w := tt.w
				w.Namespace, w.Key = "ns", "k"
				ws := []persist.Write{w}
				if batched {
					ws = append(ws, putW("ns", "other", "x", 0))
				}
				r := apply(t, db, now, ws...)[0]
				if r.Changed != tt.changed {
					t.Errorf("Changed = %v; want %v", r.Changed, tt.changed)
				}
				var want *persist.Row
				if tt.after.exists {
					want = &persist.Row{Value: tt.after.value, ExpiresAt: tt.after.exp}
				}
				checkGet(t, db, "ns", "k", want)
				// A write that changed nothing reports what it found.
				if !tt.changed {
					if r.Found != tt.before.exists || (r.Found && r.Held != (persist.Row{Value: tt.before.value, ExpiresAt: tt.before.exp})) {
						t.Errorf("Found, Held = %v, %+v; want %v, the row before", r.Found, r.Held, tt.before.exists)
					}
				} else if r.Found {
					t.Errorf("Found = true after a write that changed its row")
				}
			})
		}
	}
}

// TestConditionalForeignTypes compares values written by hand as numbers
// or blobs as the bytes a read returns.
func TestConditionalForeignTypes(t *testing.T) {
	db := mustOpen(t, "")
	raw := rawDB(t, db.Path())
	if _, err := raw.Exec(`INSERT INTO operational_state VALUES ('ns', 'n', 42, 'x', NULL), ('ns', 'b', X'6869', 'x', NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ key, old string }{{"n", "42"}, {"b", "hi"}} {
		w := persist.Write{Kind: persist.Swap, Namespace: "ns", Key: c.key, Old: c.old, Value: "new"}
		if !apply(t, db, t0, w)[0].Changed {
			t.Errorf("Swap(%q, old %q) of a hand-written value changed nothing", c.key, c.old)
		}
	}
}
