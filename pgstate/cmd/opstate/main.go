package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/internal/cli"
	"github.com/d8da9184/opstate/pgstate"
)

// connectTimeout bounds, for each run, the connection to PostgreSQL and
// the migration of its schema. A variable for the tests.
var connectTimeout = 10 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run runs the command line args (without the program name) on SQLite or
// PostgreSQL databases and returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cli.Main(args, stdin, stdout, stderr, open)
}

// open is the command's [cli.Opener]: a postgres:// or postgresql:// URL
// goes to [pgstate.Open], anything else is an SQLite file.
func open(db string, o cli.OpenOptions) (*opstate.Store, error) {
	if !cli.IsPostgresURL(db) {
		return cli.OpenSQLite(db, o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	s, err := pgstate.Open(ctx, db, o.Options())
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("%w (gave up after %v)", err, connectTimeout)
	}
	return s, err
}
