package pgdb_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/d8da9184/opstate/pgstate/internal/pgdb"
	"github.com/d8da9184/opstate/storage"
)

// unstorable are strings text cannot hold.
var unstorable = map[string]string{
	"nul":          "a\x00b",
	"invalid-utf8": "a\xffb",
	"lone-cont":    "\x80",
	"surrogate":    "\xed\xa0\x80",
}

// TestUnstorableRefused puts each unstorable string as a namespace, a key
// and a value, by each storing kind, in a batch after a good write: Apply
// fails with ErrInvalidText and nothing of the batch is stored.
func TestUnstorableRefused(t *testing.T) {
	db, _, raw := mustOpen(t)
	now := localNow()
	rawPut(t, raw, "ns", "k", "old", 0)
	for name, bad := range unstorable {
		for _, kind := range []storage.WriteKind{storage.Put, storage.PutIfAbsent, storage.Swap} {
			for _, field := range []string{"namespace", "key", "value"} {
				t.Run(fmt.Sprintf("%s/kind%d/%s", name, kind, field), func(t *testing.T) {
					w := storage.Write{Kind: kind, Namespace: "ns", Key: "k", Value: "v", Old: "old"}
					switch field {
					case "namespace":
						w.Namespace = bad
					case "key":
						w.Key = bad
					case "value":
						w.Value = bad
					}
					good := putW("ns", "good", "g", 0, now)
					_, err := db.Apply(context.Background(), now, []storage.Write{good, w})
					if !errors.Is(err, pgdb.ErrInvalidText) {
						t.Fatalf("Apply = %v; want ErrInvalidText", err)
					}
					checkState(t, raw, "ns", "good", false, "", 0)
					checkState(t, raw, "ns", "k", true, "old", 0)
				})
			}
		}
	}
}

// TestUnstorableReads reads, deletes and compares with unstorable strings:
// nothing holds them, so Get finds nothing, deletes change nothing and a
// conditional write's condition fails, reporting what the key holds.
func TestUnstorableReads(t *testing.T) {
	db, _, raw := mustOpen(t)
	ctx := context.Background()
	now := localNow()
	rawPut(t, raw, "ns", "k", "old", 0)
	for name, bad := range unstorable {
		t.Run(name, func(t *testing.T) {
			for _, nk := range [][2]string{{bad, "k"}, {"ns", bad}} {
				if _, found, err := db.Get(ctx, nk[0], nk[1]); found || err != nil {
					t.Errorf("Get(%q, %q) = %v, %v; want not found", nk[0], nk[1], found, err)
				}
				del := storage.Write{Kind: storage.Delete, Namespace: nk[0], Key: nk[1]}
				delIf := storage.Write{Kind: storage.DeleteIf, Namespace: nk[0], Key: nk[1], Old: "old"}
				res := apply(t, db, now, del, delIf)
				if res[0].Changed || res[1].Changed || res[1].Found {
					t.Errorf("Delete, DeleteIf(%q, %q) = %v, %v (found %v); want nothing", nk[0], nk[1], res[0].Changed, res[1].Changed, res[1].Found)
				}
			}
			if m, err := db.List(ctx, bad, now); err != nil || len(m) != 0 {
				t.Errorf("List(%q) = %v, %v; want empty", bad, m, err)
			}
			apply(t, db, now, storage.Write{Kind: storage.DeleteNamespace, Namespace: bad})
			swap := storage.Write{Kind: storage.Swap, Namespace: "ns", Key: "k", Old: bad, Value: "new"}
			delIf := storage.Write{Kind: storage.DeleteIf, Namespace: "ns", Key: "k", Old: bad}
			res := apply(t, db, now, swap, delIf)
			for i, w := range []storage.Write{swap, delIf} {
				if r := res[i]; r.Changed || !r.Found || r.Held.Value != "old" {
					t.Errorf("kind %d with Old %q: Changed %v, Found %v, Held %+v; want unchanged, holding old", w.Kind, bad, r.Changed, r.Found, r.Held)
				}
			}
			checkState(t, raw, "ns", "k", true, "old", 0)
		})
	}
}

// TestHostileRoundTrip stores strings that are valid text but hostile to
// SQL and to notification payloads, as namespace, key and value, and reads
// them back byte for byte.
func TestHostileRoundTrip(t *testing.T) {
	db, _, _ := mustOpen(t)
	ctx := context.Background()
	now := localNow()
	hostile := []string{"", " ", "'", `"`, `\`, `\x00`, "a'; DROP TABLE operational_state; --", "\n\r\t\x01\x1f\x7f",
		"☃ 日本 𝄞", "\u00e9", "e\u0301", "\ufeff", "%s%%", "[\"x\"]", strings.Repeat("k", 10000)}
	for i, s := range hostile {
		ws := []storage.Write{
			putW(s, "k", "v", 0, now),
			putW("ns", s, "v", 0, now),
			putW("vals", fmt.Sprint(i), s, 0, now),
		}
		apply(t, db, now, ws...)
		for _, c := range [][3]string{{s, "k", "v"}, {"ns", s, "v"}, {"vals", fmt.Sprint(i), s}} {
			r, found, err := db.Get(ctx, c[0], c[1])
			if err != nil || !found || r.Value != c[2] {
				t.Errorf("Get(%q, %q) = %q, %v, %v; want %q", c[0], c[1], r.Value, found, err, c[2])
			}
		}
	}
	// Byte order, not a collation's: "Z" before "a", "e\u0301" after "e".
	m, err := db.Namespaces(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(m); i++ {
		if m[i-1].Namespace >= m[i].Namespace {
			t.Errorf("Namespaces not in byte order: %q before %q", m[i-1].Namespace, m[i].Namespace)
		}
	}
}

// TestNamespacesByteOrder gives the namespace column a linguistic
// collation, as a database created with one would, and checks that
// Namespaces still sorts by bytes, as on SQLite.
func TestNamespacesByteOrder(t *testing.T) {
	db, _, raw := mustOpen(t)
	ctx := context.Background()
	if _, err := raw.Exec(ctx, `ALTER TABLE operational_state ALTER COLUMN namespace TYPE text COLLATE "und-x-icu"`); err != nil {
		t.Skipf("no ICU collation on this server: %v", err)
	}
	now := localNow()
	apply(t, db, now, putW("b", "k", "v", 0, now), putW("B", "k", "v", 0, now), putW("a", "k", "v", 0, now), putW("_", "k", "v", 0, now))
	got, err := db.Namespaces(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, nc := range got {
		names = append(names, nc.Namespace)
	}
	if want := []string{"B", "_", "a", "b"}; strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("Namespaces = %q; want %q (byte order)", names, want)
	}
}
