package pgdb_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/d8da9184/opstate/storage"
)

// TestWriteKinds runs Put, Delete and DeleteNamespace against a present and
// a missing key and checks Changed and the row after.
func TestWriteKinds(t *testing.T) {
	db, _, raw := mustOpen(t)
	now := localNow()
	tests := []struct {
		name    string
		present bool
		w       storage.Write
		changed bool
		exists  bool
	}{
		{"put/missing", false, storage.Write{Kind: storage.Put, Value: "v"}, true, true},
		{"put/present", true, storage.Write{Kind: storage.Put, Value: "v"}, true, true},
		{"delete/present", true, storage.Write{Kind: storage.Delete}, true, false},
		{"delete/missing", false, storage.Write{Kind: storage.Delete}, false, false},
		{"delete-namespace/present", true, storage.Write{Kind: storage.DeleteNamespace}, true, false},
		{"delete-namespace/missing", false, storage.Write{Kind: storage.DeleteNamespace}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := tt.name
			if tt.present {
				rawPut(t, raw, ns, "k", "old", 0)
			}
			rawPut(t, raw, ns+"/neighbour", "k", "n", 0)
			w := tt.w
			w.Namespace, w.Key = ns, "k"
			if r := apply(t, db, now, w)[0]; r.Changed != tt.changed {
				t.Errorf("Changed = %v; want %v", r.Changed, tt.changed)
			}
			want := ""
			if tt.exists {
				want = "v"
			}
			checkState(t, raw, ns, "k", tt.exists, want, 0)
			checkState(t, raw, ns+"/neighbour", "k", true, "n", 0)
		})
	}
}

// TestApplyAtomic makes the third write of a batch fail on the server (a
// CHECK constraint added behind the DB's back) and checks that nothing of
// the batch was applied, and that Apply returned no results.
func TestApplyAtomic(t *testing.T) {
	db, _, raw := mustOpen(t)
	ctx := context.Background()
	if _, err := raw.Exec(ctx, `ALTER TABLE operational_state ADD CONSTRAINT no_bad CHECK (value <> 'bad')`); err != nil {
		t.Fatal(err)
	}
	rawPut(t, raw, "ns", "gone", "here", 0)
	now := localNow()
	del := storage.Write{Kind: storage.Delete, Namespace: "ns", Key: "gone"}
	ws := []storage.Write{putW("ns", "a", "1", 0, now), del, putW("ns", "b", "bad", 0, now), putW("ns", "c", "3", 0, now)}
	res, err := db.Apply(ctx, now, ws)
	if err == nil {
		t.Fatal("Apply of a batch with a failing write = nil; want an error")
	}
	if res != nil {
		t.Errorf("Apply of a failed batch returned results %+v; want nil", res)
	}
	checkState(t, raw, "ns", "a", false, "", 0)
	checkState(t, raw, "ns", "gone", true, "here", 0)
	checkState(t, raw, "ns", "c", false, "", 0)
	// The DB's connections are usable afterwards.
	apply(t, db, now, putW("ns", "a", "1", 0, now))
	checkState(t, raw, "ns", "a", true, "1", 0)
}

// TestReadsJudgeByServerClock stores rows live and expired by the server's
// clock and reads them with a caller's now a day off either way: List and
// Namespaces follow the server, Get returns both with the server's
// ExpiresAt, and a TTL given with a skewed now lives its TTL on the server.
func TestReadsJudgeByServerClock(t *testing.T) {
	db, _, raw := mustOpen(t)
	ctx := context.Background()
	rawPut(t, raw, "ns", "live", "1", time.Hour)
	rawPut(t, raw, "ns", "forever", "2", 0)
	rawPut(t, raw, "ns", "dead", "3", -time.Second)
	rawPut(t, raw, "deadspace", "k", "4", -time.Second)
	day := 24 * time.Hour.Milliseconds()
	for _, now := range []int64{localNow() - day, localNow() + day} {
		got, err := db.List(ctx, "ns", now)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]string{"live": "1", "forever": "2"}; !reflect.DeepEqual(got, want) {
			t.Errorf("List(ns, now %d) = %v; want %v", now, got, want)
		}
		spaces, err := db.Namespaces(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		if want := []storage.NamespaceCount{{Namespace: "ns", Live: 2}}; !reflect.DeepEqual(spaces, want) {
			t.Errorf("Namespaces(now %d) = %v; want %v", now, spaces, want)
		}
	}
	r, found, err := db.Get(ctx, "ns", "dead")
	if err != nil || !found || r.Value != "3" {
		t.Fatalf("Get(ns, dead) = %+v, %v, %v; want the expired row", r, found, err)
	}
	checkExpiry(t, raw, "Get(ns, dead).ExpiresAt", r.ExpiresAt, -time.Second)
	r, _, _ = db.Get(ctx, "ns", "live")
	checkExpiry(t, raw, "Get(ns, live).ExpiresAt", r.ExpiresAt, time.Hour)

	// A caller a day behind sets a one-minute TTL: it lives a minute.
	now := localNow() - day
	apply(t, db, now, putW("ns", "ttl", "v", time.Minute, now))
	checkState(t, raw, "ns", "ttl", true, "v", time.Minute)
}

// TestGetMissing checks that Get tells a missing key from an empty value.
func TestGetMissing(t *testing.T) {
	db, _, raw := mustOpen(t)
	rawPut(t, raw, "ns", "empty", "", 0)
	ctx := context.Background()
	if _, found, err := db.Get(ctx, "ns", "nope"); found || err != nil {
		t.Errorf("Get(ns, nope) = %v, %v; want not found", found, err)
	}
	if r, found, err := db.Get(ctx, "ns", "empty"); !found || err != nil || r != (storage.Row{}) {
		t.Errorf("Get(ns, empty) = %+v, %v, %v; want an empty value, found", r, found, err)
	}
}

// TestExpiryInCallersClock checks that the expiries Get and a refused
// conditional write report are instants of the DB's clock, however far it
// is from the server's: as far from the caller's now as the server's
// expiry is from the server's now.
func TestExpiryInCallersClock(t *testing.T) {
	dsn, raw := server(t)
	const skew = 3 * time.Hour
	clock := func() time.Time { return time.Now().Add(skew) }
	opts := pgdbOptions()
	opts.Clock = clock
	db := openDSN(t, dsn, opts)
	rawPut(t, raw, "ns", "k", "v", time.Minute)
	ctx := context.Background()
	r, found, err := db.Get(ctx, "ns", "k")
	if err != nil || !found {
		t.Fatalf("Get = %v, %v", found, err)
	}
	within := func(what string, got int64) {
		t.Helper()
		want := clock().Add(time.Minute).UnixMilli()
		if d := got - want; d < -2000 || d > 2000 {
			t.Errorf("%s = %d; want about %d (a minute after the DB's clock, %v ahead of the server's), off by %d ms", what, got, want, skew, d)
		}
	}
	within("Get.ExpiresAt", r.ExpiresAt)
	now := clock().UnixMilli()
	w := storage.Write{Kind: storage.PutIfAbsent, Namespace: "ns", Key: "k", Value: "other"}
	res := apply(t, db, now, w)[0]
	if res.Changed || !res.Found {
		t.Fatalf("PutIfAbsent on a live key: Changed %v, Found %v", res.Changed, res.Found)
	}
	within("Held.ExpiresAt", res.Held.ExpiresAt)
}

// TestPutRunDuplicates checks a run of Puts that names a key twice, which
// one multi-row upsert cannot: the last Put wins, every Put is Changed,
// and the keys keep their first Put's order (the order rows are locked
// in: TestDeadlockBusy depends on it).
func TestPutRunDuplicates(t *testing.T) {
	db, _, raw := mustOpen(t)
	now := localNow()
	ws := []storage.Write{
		putW("ns", "a", "1", 0, now),
		putW("ns", "b", "1", time.Hour, now),
		putW("ns", "a", "2", time.Minute, now),
		putW("ns", "b", "2", 0, now),
		putW("ns", "a", "3", 0, now),
	}
	for i, r := range apply(t, db, now, ws...) {
		if !r.Changed {
			t.Errorf("write %d: Changed false", i)
		}
	}
	checkState(t, raw, "ns", "a", true, "3", 0)
	checkState(t, raw, "ns", "b", true, "2", 0)
}
