package opstate_test

import (
	"path/filepath"
	"testing"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/storetest"
)

// TestOpenDBConformance runs the conformance suite over Stores of OpenDB on
// handles of modernc.org/sqlite, the driver opstate itself uses (module
// opendb runs it over github.com/mattn/go-sqlite3 and
// github.com/ncruces/go-sqlite3): every Opener opens a handle of its own.
func TestOpenDBConformance(t *testing.T) {
	storetest.Run(t, storetest.Config{
		New: func(t *testing.T) storetest.Opener {
			path := filepath.Join(t.TempDir(), "state.db")
			return func(opts opstate.Options) (*opstate.Store, error) {
				return opstate.OpenDB(sqlDB(t, path), opts)
			}
		},
		Lag: opstate.DefaultSyncInterval + syncSlack,
	})
}

// TestOpenDBBesideOpen checks that a Store of OpenDB and a Store of Open
// share a file in one process, both through modernc.org/sqlite: each
// serves the other's writes, and neither is refused as another library.
func TestOpenDBBesideOpen(t *testing.T) {
	path := dbPath(t)
	a := mustOpen(t, path, opstate.Options{})
	b, err := opstate.OpenDB(sqlDB(t, path), opstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mustSet(t, a, "ns", "from-open", "a")
	mustSet(t, b, "ns", "from-opendb", "b")
	for _, s := range []*opstate.Store{a, b} {
		waitValue(t, s, "ns", "from-open", "a")
		waitValue(t, s, "ns", "from-opendb", "b")
	}
	mustSet(t, a, "ns", "after", "a") // not refused with ErrForeignSQLite
}
