package opstate_test

import (
	"path/filepath"
	"testing"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/storetest"
)

// TestConformance runs the Store's conformance suite over SQLite: every
// Opener opens Stores on one file of the test's own.
func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Config{
		New: func(t *testing.T) storetest.Opener {
			path := filepath.Join(t.TempDir(), "state.db")
			return func(opts opstate.Options) (*opstate.Store, error) {
				return opstate.Open(path, opts)
			}
		},
		// Others' writes are served within SyncInterval (5 ms by default)
		// and the scheduling slack the coherence tests allow.
		Lag: opstate.DefaultSyncInterval + syncSlack,
	})
}
