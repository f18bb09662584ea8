// Package pgtest holds the tests of module ofprovider that run its
// Provider over a Store on PostgreSQL (module pgstate).
//
// It is a module of its own so that ofprovider's go.mod names neither
// pgstate nor pgx: a program that uses the provider over SQLite does not
// download the PostgreSQL driver for the sake of a test. The package has
// no code but its tests; they need a server (OPSTATE_PG_DSN, or libpq's
// PG* variables, as pg_virtualenv sets them) and skip without one unless
// OPSTATE_REQUIRE_PG=1.
package pgtest
