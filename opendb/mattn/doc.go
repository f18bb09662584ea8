// Package mattn tests opstate.OpenDB over github.com/mattn/go-sqlite3,
// which links SQLite's C library through cgo (see package check).
package mattn
