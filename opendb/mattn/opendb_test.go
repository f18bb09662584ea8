package mattn_test

import (
	"database/sql"
	"testing"

	_ "github.com/mattn/go-sqlite3" // registers "sqlite3"

	"github.com/d8da9184/opstate/opendb/internal/check"
)

var driver = check.Driver{
	Name: "sqlite3",
	DSN: func(path string, busyMS int, readOnly bool) string {
		dsn := "file:" + path + "?_busy_timeout=" + check.Itoa(busyMS)
		if readOnly {
			dsn += "&mode=ro"
		}
		return dsn
	},
	// Built without cgo, the driver opens nothing.
	Works: func() error {
		db, err := sql.Open("sqlite3", ":memory:")
		if err != nil {
			return err
		}
		defer db.Close()
		return db.Ping()
	},
}

func TestMain(m *testing.M) { check.Main(m, driver) }

// TestOpenDB runs every check of OpenDB over github.com/mattn/go-sqlite3.
func TestOpenDB(t *testing.T) { check.Run(t, driver) }
