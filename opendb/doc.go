// Package opendb holds the tests of opstate.OpenDB over the database/sql
// drivers of SQLite other than modernc.org/sqlite, opstate's own:
// github.com/mattn/go-sqlite3 (cgo) in package mattn and
// github.com/ncruces/go-sqlite3 in package ncruces. Both drivers register
// the name "sqlite3", so each has a package, and a test binary, of its
// own; what they check is in package check, the same for both.
//
// It is a module of its own, so that the root module keeps its three
// dependencies.
package opendb
