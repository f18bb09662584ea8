package serve

import (
	"errors"
	"fmt"
	"testing"

	"github.com/d8da9184/opstate"
)

// TestStoreStatus checks the status of each of the Store's errors, as
// the Store returns them: wrapped with the call.
func TestStoreStatus(t *testing.T) {
	for _, tt := range []struct {
		err  error
		code int
	}{
		{opstate.ErrEmptyName, 400},
		{opstate.ErrInvalidTTL, 400},
		{opstate.ErrInvalidText, 400},
		{opstate.ErrBusy, 503},
		{opstate.ErrClosed, 503},
		{opstate.ErrDiskFull, 507},
		{opstate.ErrIO, 500},
		{opstate.ErrCorrupt, 500},
		{opstate.ErrReadOnly, 500},
		{errors.New("anything"), 500},
	} {
		err := fmt.Errorf("opstate: set %q/%q: %w", "ns", "k", tt.err)
		if got := storeStatus(err); got != tt.code {
			t.Errorf("storeStatus(%v) = %d; want %d", err, got, tt.code)
		}
	}
}
