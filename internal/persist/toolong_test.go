package persist_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/d8da9184/opstate/internal/persist"
)

// TestMaxLength checks MaxLength against the length limit SQLite reports
// for a connection, as modernc.org/sqlite is built: a longer row fails.
func TestMaxLength(t *testing.T) {
	db := mustOpen(t, "")
	got, err := db.LimitLength(-1) // a negative limit reads it
	if err != nil {
		t.Fatal(err)
	}
	if got != persist.MaxLength {
		t.Errorf("SQLite's length limit is %d bytes; want MaxLength, %d", got, persist.MaxLength)
	}
}

// TestTooLongWrite writes rows longer than SQLite's length limit, lowered
// on the write connection so as not to write a gigabyte: the write must
// fail with an error that says what fits, and store nothing, while a
// write that fits succeeds.
func TestTooLongWrite(t *testing.T) {
	const limit = 1000
	db := mustOpen(t, "")
	if _, err := db.LimitLength(limit); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, w := range []persist.Write{
		{Kind: persist.Put, Namespace: "ns", Key: "long value", Value: strings.Repeat("v", limit+1)},
		{Kind: persist.Put, Namespace: "ns", Key: "long row", Value: strings.Repeat("v", limit-20)},
		{Kind: persist.Put, Namespace: "ns", Key: strings.Repeat("k", limit+1), Value: "v"},
	} {
		_, err := db.Apply(ctx, t0, []persist.Write{w})
		if want := fmt.Sprintf("at most %d bytes in a row", persist.MaxLength); err == nil || !strings.Contains(err.Error(), want) ||
			!strings.Contains(err.Error(), "too big") {
			t.Errorf("Apply(a %d-byte key, a %d-byte value) = %v; want SQLite's too big, saying %q", len(w.Key), len(w.Value), err, want)
		}
		if _, ok, err := db.Get(ctx, w.Namespace, w.Key); ok || err != nil {
			t.Errorf("Get(%.20q) after the refused write = %v, %v; want absent", w.Key, ok, err)
		}
	}
	fits := persist.Write{Kind: persist.Put, Namespace: "ns", Key: "k", Value: strings.Repeat("v", limit/2)}
	if _, err := db.Apply(ctx, t0, []persist.Write{fits}); err != nil {
		t.Errorf("Apply(a value of %d bytes) = %v; want nil", len(fits.Value), err)
	}
}
