// Command opstate reads and edits an opstate database from the shell, as
// the command of the root module (github.com/d8da9184/opstate/cmd/opstate,
// whose documentation is this one's) does, and speaks PostgreSQL too:
//
//	opstate -db 'postgres://app@db1.example.com/ops?sslmode=verify-full' list flags
//	OPSTATE_DB=postgres://app@db1.example.com/ops opstate watch flags
//
// A -db (or OPSTATE_DB) that begins with postgres:// or postgresql:// is
// opened with [github.com/d8da9184/opstate/pgstate.Open], within 10
// seconds for connecting and migrating the schema; anything else is an
// SQLite file. Every verb but backup works on either; backup copies SQLite
// databases only (copy PostgreSQL with pg_dump).
//
// It is built from module github.com/d8da9184/opstate/pgstate, so that
// the root module does not depend on pgx. In a checkout of opstate:
//
//	cd pgstate && go install ./cmd/opstate
package main
