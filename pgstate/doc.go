// Package pgstate will serve an [github.com/d8da9184/opstate.Store] over PostgreSQL, so that
// agents on many machines share one operational state (issue 11).
//
// It is in progress: the Store's storage seam, an interface in the root
// package that both SQLite and PostgreSQL implement, does not exist yet,
// so this package exports nothing. The PostgreSQL storage layer that the
// seam will plug in, with its schema, migrations, writes, sweeps and
// change notifications, lives in internal/pgdb, where its API can change
// without breaking anyone.
package pgstate
