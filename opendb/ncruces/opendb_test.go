package ncruces_test

import (
	"testing"

	_ "github.com/ncruces/go-sqlite3/driver" // registers "sqlite3"

	"github.com/d8da9184/opstate/opendb/internal/check"
)

var driver = check.Driver{
	Name: "sqlite3",
	DSN: func(path string, busyMS int, readOnly bool) string {
		dsn := "file:" + path + "?_pragma=busy_timeout(" + check.Itoa(busyMS) + ")"
		if readOnly {
			dsn += "&mode=ro"
		}
		return dsn
	},
}

func TestMain(m *testing.M) { check.Main(m, driver) }

// TestOpenDB runs every check of OpenDB over github.com/ncruces/go-sqlite3.
func TestOpenDB(t *testing.T) { check.Run(t, driver) }
