// Package ncruces tests opstate.OpenDB over github.com/ncruces/go-sqlite3,
// SQLite compiled to WebAssembly and translated to Go (see package check).
package ncruces
