package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/d8da9184/opstate"
)

// OpenSQLite is the [Opener] of SQLite database files: it opens the file
// db with no background sweeper. Unless create, a path that holds nothing
// is refused, creating nothing, so that a mistyped -db fails loudly
// instead of creating an empty file and reporting a missing key.
func OpenSQLite(db string, create bool) (*opstate.Store, error) {
	if !create {
		// os.Stat opens no descriptor of the file.
		if _, err := os.Stat(db); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("opstate: open %s: no such database (only set creates one)", db)
			}
			return nil, fmt.Errorf("opstate: open %s: %w", db, err)
		}
	}
	return opstate.Open(db, opstate.Options{SweepInterval: -1})
}
