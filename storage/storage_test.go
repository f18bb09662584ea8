package storage_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/d8da9184/opstate/storage"
)

// TestConditional checks which kinds may change nothing: the Store
// refreshes its cache from Held only for those.
func TestConditional(t *testing.T) {
	for _, tc := range []struct {
		kind storage.WriteKind
		want bool
	}{
		{storage.Put, false},
		{storage.Delete, false},
		{storage.DeleteNamespace, false},
		{storage.PutIfAbsent, true},
		{storage.Swap, true},
		{storage.DeleteIf, true},
	} {
		if got := tc.kind.Conditional(); got != tc.want {
			t.Errorf("WriteKind(%d).Conditional() = %v; want %v", tc.kind, got, tc.want)
		}
	}
}

// TestErrors checks that the sentinels are distinct and speak as opstate.
func TestErrors(t *testing.T) {
	errs := []error{storage.ErrBusy, storage.ErrCorrupt, storage.ErrSchemaVersion, storage.ErrInvalidText,
		storage.ErrNotDatabase, storage.ErrInvalidPath, storage.ErrDiskFull, storage.ErrIO, storage.ErrReadOnly,
		storage.ErrSchema, storage.ErrForeignSQLite}
	for i, a := range errs {
		if !strings.HasPrefix(a.Error(), "opstate: ") {
			t.Errorf("%q does not begin with \"opstate: \"", a)
		}
		for _, b := range errs[i+1:] {
			if errors.Is(a, b) || errors.Is(b, a) {
				t.Errorf("%q and %q match each other", a, b)
			}
		}
	}
}
