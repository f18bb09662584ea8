package pgstate_test

import (
	"context"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/pgstate"
	"github.com/d8da9184/opstate/pgstate/internal/pgtest"
	"github.com/d8da9184/opstate/storetest"
)

// TestConformance runs the Store's conformance suite over PostgreSQL:
// every Opener opens Stores on one schema of the test's own.
func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Config{
		New: func(t *testing.T) storetest.Opener {
			dsn := pgtest.Schema(t)
			return func(opts opstate.Options) (*opstate.Store, error) {
				return pgstate.Open(context.Background(), dsn, opts)
			}
		},
		RefusesText: true,
		// A bound, not a target: others' writes arrive by LISTEN within a
		// few milliseconds.
		Lag: 2 * time.Second,
	})
}
