// Package check is the test of opstate.OpenDB over one database/sql driver
// of SQLite, run by the driver's package: the Store's conformance suite,
// the application writing tables of its own through the same handle while
// the Store works, a SIGKILL after acknowledged writes, another process's
// writes served within SyncInterval, and the handle's ownership: the
// Store takes one connection, gives none back altered, and leaves the
// handle open.
package check

import (
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/storetest"
)

// Driver is the database/sql driver under test.
type Driver struct {
	// Name is the name the driver registered with database/sql.
	Name string
	// DSN returns the data source name of the database file at path, as
	// an application would write it: with a busy timeout of busyMS
	// milliseconds for its own connections, and read-only if readOnly.
	DSN func(path string, busyMS int, readOnly bool) string
	// Works returns nil if the driver works in this build (a cgo driver
	// built without cgo does not).
	Works func() error
}

// appBusyMS is the busy timeout of the application's own connections.
const appBusyMS = 5000

// syncSlack is the scheduling slack allowed on top of SyncInterval before
// another connection's write must be served, as in the root module's
// tests: generous for 2 cores under -race.
const syncSlack = 250 * time.Millisecond

// Run runs every check over d, each a subtest of t.
func Run(t *testing.T, d Driver) {
	require(t, d)
	t.Run("Conformance", func(t *testing.T) { conformance(t, d) })
	t.Run("Refused", func(t *testing.T) { refused(t, d) })
	t.Run("Ownership", func(t *testing.T) { ownership(t, d) })
	t.Run("Errors", func(t *testing.T) { errorsOf(t, d) })
	t.Run("AppTables", func(t *testing.T) { appTables(t, d) })
	t.Run("OtherProcess", func(t *testing.T) { otherProcess(t, d) })
	t.Run("Kill", func(t *testing.T) { kill(t, d) })
}

// require skips t where the driver does not work here, and fails it
// instead with CI=true, so that CI never passes without running it.
func require(t *testing.T, d Driver) {
	t.Helper()
	if d.Works == nil {
		return
	}
	if err := d.Works(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and driver %s does not work here: %v", d.Name, err)
		}
		t.Skipf("driver %s does not work here: %v", d.Name, err)
	}
}

// conformance runs the Store's conformance suite: every Opener opens a
// handle of its own on one file, as another application would, and a Store
// over it.
func conformance(t *testing.T, d Driver) {
	storetest.Run(t, storetest.Config{
		New: func(t *testing.T) storetest.Opener {
			path := filepath.Join(t.TempDir(), "state.db")
			return func(opts opstate.Options) (*opstate.Store, error) {
				return opstate.OpenDB(handle(t, d, path), opts)
			}
		},
		Lag: opstate.DefaultSyncInterval + syncSlack,
	})
}

// handle opens an application's handle on the file at path, closed when
// the test ends (after the Stores opened over it, whose cleanups run
// first).
func handle(t testing.TB, d Driver, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open(d.Name, d.DSN(path, appBusyMS, false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// mustOpenDB opens a Store over db, closed when the test ends.
func mustOpenDB(t testing.TB, db *sql.DB, opts opstate.Options) *opstate.Store {
	t.Helper()
	s, err := opstate.OpenDB(db, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Itoa formats n in decimal, for a DSN.
func Itoa(n int) string { return strconv.Itoa(n) }
