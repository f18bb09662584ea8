package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/d8da9184/opstate"
)

// OpenSQLite is the [Opener] of SQLite database files, the root module's
// command's: it opens the file db with o's options (the background
// sweeper if o.Sweep, none otherwise). Unless o.Create, a path that holds
// nothing is refused, creating nothing, so that a mistyped -db fails
// loudly instead of creating an empty file and reporting a missing key. A
// PostgreSQL URL is refused, creating nothing, with a message that names
// the command that speaks PostgreSQL.
func OpenSQLite(db string, o OpenOptions) (*opstate.Store, error) {
	if IsPostgresURL(db) {
		return nil, fmt.Errorf("opstate: open %s: this opstate command speaks SQLite only; "+
			"PostgreSQL is spoken by %s", redact(db), postgresCommand)
	}
	if !o.Create {
		// os.Stat opens no descriptor of the file.
		if _, err := os.Stat(db); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("opstate: open %s: no such database (only set and serve create one)", db)
			}
			return nil, fmt.Errorf("opstate: open %s: %w", db, err)
		}
	}
	return opstate.Open(db, o.Options())
}

// SweepInterval returns the Options.SweepInterval of a Store that runs
// the background sweeper if sweep: the default interval, or none.
func SweepInterval(sweep bool) time.Duration {
	if sweep {
		return 0
	}
	return -1
}

// postgresCommand says how to get the opstate command that speaks
// PostgreSQL.
const postgresCommand = "the opstate command of module github.com/d8da9184/opstate/pgstate " +
	"(in a checkout of opstate: cd pgstate && go install ./cmd/opstate)"

// IsPostgresURL reports whether db, a -db value, is a PostgreSQL URL:
// whether it begins with postgres:// or postgresql://, as libpq and pgx
// tell a URL from a key=value connection string.
func IsPostgresURL(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// dsnKeys are the keywords of libpq's key=value connection strings that
// begin one in practice.
var dsnKeys = []string{"host", "hostaddr", "port", "dbname", "user", "password", "passfile",
	"sslmode", "service", "connect_timeout", "application_name", "options", "search_path"}

// isKeyValueDSN reports whether db looks like a key=value connection
// string (host=db1 dbname=ops ...): whether its first word is a libpq
// keyword and "=". opstate takes a URL, not that form, and would otherwise
// read it as a file name.
func isKeyValueDSN(db string) bool {
	first, _, _ := strings.Cut(strings.TrimSpace(db), " ")
	k, _, ok := strings.Cut(first, "=")
	return ok && slices.Contains(dsnKeys, k)
}

// redact returns db for a message: a path as it is, a URL with its
// password masked (postgres://user:xxxxx@host/db, and the password and
// sslpassword parameters likewise), and a URL that does not parse, whose
// password cannot be told apart, as its scheme alone.
func redact(db string) string {
	if !IsPostgresURL(db) {
		return db
	}
	u, err := url.Parse(db)
	if err != nil {
		scheme, _, _ := strings.Cut(db, "://")
		return scheme + "://(a URL that does not parse)"
	}
	if q := u.Query(); q.Has("password") || q.Has("sslpassword") {
		for _, k := range []string{"password", "sslpassword"} {
			if q.Has(k) {
				q.Set(k, "xxxxx")
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
