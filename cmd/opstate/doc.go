// Command opstate reads and edits an opstate database from the shell.
//
// Usage:
//
//	opstate [-db PATH|URL] [-actor NAME] VERB [ARGS]
//
// The database is the file PATH, ./opstate.db by default (relative to the
// working directory), or the PostgreSQL database of URL (see PostgreSQL
// below). When -db is not given, the environment variable OPSTATE_DB, if
// it is not empty, gives the PATH or URL instead. Only set creates the
// file, mode 0600, when it does not exist; every other verb (get, list,
// watch, ns, del, drop, sweep, backup) run on a path that holds nothing
// fails with a message naming the path, and creates nothing, so that a
// mistyped -db is not mistaken for a missing key.
// Each run opens the database with no background sweeper, does one thing
// (watch: until it is interrupted) and closes it. So -db :memory:, which the
// library opens as an in-memory database gone at Close, is bad usage
// (./:memory: names a file), and so is a PATH beginning with "file:", which
// SQLite would read as a URI.
//
// # PostgreSQL
//
// A -db or OPSTATE_DB that begins with postgres:// or postgresql:// is a
// PostgreSQL URL, such as
//
//	postgres://app@db1.example.com:5432/ops?sslmode=verify-full
//
// read as libpq reads it: libpq's PG* variables (PGPASSWORD, PGHOST, ...)
// and ~/.pgpass supply what it leaves out, and a search_path parameter
// picks the schema. Every verb works on it as on a file, with the
// semantics of [github.com/d8da9184/opstate/pgstate.Open], except backup
// (copy PostgreSQL with pg_dump); every verb, not only set, creates
// opstate's table when the schema has none. A key=value connection string
// (host=db1 dbname=ops ...) is not taken: it is bad usage, which the
// message does not echo. Keep a password in
// OPSTATE_DB, PGPASSWORD or ~/.pgpass rather than in -db, where other
// users of the machine can read it (ps); messages print a URL with its
// password masked (postgres://app:xxxxx@db1/ops).
//
// This command, built from the root module, speaks SQLite only, so that
// the module does not depend on a PostgreSQL driver: given a URL, it fails
// with exit status 1, saying so and changing nothing. The command that
// speaks both is built from module github.com/d8da9184/opstate/pgstate;
// in a checkout of opstate:
//
//	cd pgstate && go install ./cmd/opstate
//
// # Verbs
//
//	get NS KEY
//	    Print the value of KEY in namespace NS, then a newline. A missing or
//	    expired key prints nothing (on either stream) and exits 1. An empty
//	    value prints just the newline and exits 0.
//	set [-ttl DURATION] NS KEY VALUE
//	    Store VALUE under KEY, replacing any value and any expiry. With -ttl
//	    the key expires after DURATION (a positive time.ParseDuration string
//	    such as 90s or 36h; kept to the millisecond). A VALUE of "-" reads
//	    the value from standard input, byte for byte: a trailing newline, NUL
//	    bytes and invalid UTF-8 are all stored as read. (So the one-character
//	    value "-" itself is set with: printf %s - | opstate set NS KEY -.)
//	    A value longer than 1,000,000,000 bytes, the most SQLite stores in
//	    a row, is refused once that much has been read (a file on standard
//	    input, before any is read), and nothing is opened or stored; a
//	    value a little shorter is refused by SQLite if the row with its
//	    namespace and key does not fit.
//	del NS KEY
//	    Delete KEY. Deleting a missing key is not an error.
//	drop NS
//	    Delete every key of NS. Dropping an empty namespace is not an error.
//	list [-json] NS
//	    Print the live keys of NS, one KEY<TAB>VALUE line each, sorted by
//	    key in byte order. With -json, print one JSON object mapping key to
//	    value on a single line instead, {} when NS holds no live key; if a
//	    key or value is not valid UTF-8, print nothing and fail (see below).
//	watch [-json] NS
//	    Print one line for each change to NS committed after it starts, as
//	    soon as it learns of it, until SIGINT or SIGTERM ends it with exit
//	    status 0. A change made by another program (a Store, opstate set,
//	    the sqlite3 shell, psql) is printed within the library's
//	    SyncInterval (on PostgreSQL: as soon as its notification comes). The
//	    lines are
//	        set<TAB>KEY<TAB>VALUE  KEY now holds VALUE
//	        delete<TAB>KEY         KEY was deleted
//	        expire<TAB>KEY         KEY expired
//	        reset                  anything in NS may have changed (drop,
//	                               or too many changes): re-read it with list
//	        stale                  (PostgreSQL) the change stream is down:
//	                               others' changes go unprinted until a reset
//	    With -json, each line is instead one JSON object such as
//	    {"namespace":"flags","key":"k","op":"set","value":"v"}, "value"
//	    present only for set and "key" absent for reset and stale. Changes to one key
//	    are printed in the order they were committed; when watch notices
//	    several changes of another program to a key at once, it prints one,
//	    what the key holds now. watch itself changes no key and sweeps
//	    nothing.
//	ns
//	    Print one NAMESPACE<TAB>COUNT line for each namespace that holds live
//	    keys, sorted by name, COUNT being its number of live keys.
//	sweep
//	    Delete the expired keys of every namespace and print how many.
//	backup DEST
//	    Write a consistent copy of the database to DEST, a new file (mode
//	    0600), while other programs go on reading and writing it; fail if
//	    DEST exists. This is the safe way to copy a database that a program
//	    has open: cp of the file, or of the file and its -wal, can catch a
//	    commit or checkpoint halfway and copy a damaged database. SQLite
//	    only: on PostgreSQL it fails (exit 1), and pg_dump copies.
//	history-keep [NS N]
//	    Make NS keep the history of its keys, its last N changes: from then
//	    on every change to one of them, by any writer (plain SQL in the
//	    sqlite3 shell or psql included), is recorded in the database with
//	    the time, who made it and the value before and after. N 0 turns it
//	    off. The choice is stored in the database: every writer honours it.
//	    Without arguments, print one NAMESPACE<TAB>N line for each
//	    namespace that keeps history, sorted by name.
//	history [-n N] [-json] NS [KEY]
//	    Print the recorded changes of KEY, or of every key of NS, newest
//	    first, at most N (default 20), as a table with a header: SEQ, TIME
//	    (UTC, by the database's clock, to the millisecond), ACTOR (who made
//	    it, sql for plain SQL), OP (set, delete, expire), KEY, CHANGE (the
//	    value before and after, "before" → "after", each quoted by
//	    strconv.Quote, or absent for no value) and EXPIRES (of the value
//	    set: a time, never, or - for a change that left no value). With
//	    -json, print one JSON array of objects with seq, time, namespace,
//	    key, op and actor, before and beforeExpires when the key had a row,
//	    after and expires for a set (an expiry only when there is one);
//	    exact or absent, as list -json. A namespace that keeps no history
//	    fails (exit 1).
//	revert NS KEY SEQ
//	    Give KEY the value and expiry it had right after change SEQ of its
//	    history, or no value if that change deleted it, writing only if KEY
//	    still holds what its latest recorded change left; if it was changed
//	    since (while history was off), change nothing and fail, saying what
//	    it holds. The revert is itself recorded, as this run's actor. A SEQ
//	    that is not a change of KEY fails (exit 1); one that is not a
//	    positive number is bad usage.
//	serve [-addr HOST:PORT] [-flags NAMESPACE] [-tokens FILE] [-cors ORIGIN]... [-max-value BYTES]
//	    Serve the database over HTTP until SIGINT or SIGTERM, which end it
//	    with exit status 0 once the requests in flight are answered (for
//	    10 seconds at most) and the event streams are ended; print
//	    "serving http://ADDR" on standard output once listening. It serves
//	    OFREP, the OpenFeature Remote Evaluation Protocol, for feature-flag
//	    clients in any language, the flags being the keys of NAMESPACE
//	    (default flags), and a key-value API with Server-Sent Events
//	    streams of changes: docs/serve.md in the repository lists the
//	    endpoints. -addr defaults to 127.0.0.1:8047. Without -tokens, serve
//	    admits every request and so listens on a loopback address only
//	    (127.0.0.1, ::1, localhost: any other is bad usage). With -tokens
//	    FILE, every request needs the secret of a token of FILE, in
//	    Authorization: Bearer SECRET or X-API-Key: SECRET; FILE holds lines
//	    NAME SCOPE sha256:HEX (SCOPE read or write; # comments), as opstate
//	    token prints them, and must not be readable by group or others.
//	    SIGHUP reads FILE again: requests after it use the new tokens, and
//	    a FILE then refused leaves the tokens as they were (a message says
//	    so on standard error). -cors ORIGIN, repeatable, lets the browser
//	    pages of ORIGIN (https://app.example.com) call the server.
//	    -max-value bounds a request body (default 1048576 bytes). serve
//	    creates the database if it is missing, and runs the library's
//	    background sweeper, so that expired keys are deleted and reported
//	    to event streams as they expire. No TLS: put it behind a proxy that
//	    terminates TLS.
//	token NAME SCOPE
//	    Print a new random secret (256 bits, 43 characters) on standard
//	    output and, on standard error, the line of serve's token file that
//	    admits it with SCOPE (read, or write, which includes read):
//	    opstate token ci read 2>>tokens appends the line to the file tokens.
//	    It opens no database.
//	help
//	    Print the usage on standard output.
//
// -actor NAME names who the run's writes are recorded as in the history
// of a namespace that keeps one (default: the OS user's name); an empty
// NAME, one longer than 256 bytes, or one with a control character or
// invalid UTF-8 is bad usage.
//
// Verb flags go between the verb and its arguments. A namespace or key that
// begins with "-" follows "--": opstate get -- -ns key.
//
// A row written into the file by hand whose namespace or key SQLite stores
// as a BLOB (CAST('k' AS BLOB), x'6b') is no key, as for the library:
// get does not find it, list and ns leave it out, watch prints nothing for
// it, and drop and sweep delete it with the namespace's other rows, or the
// other expired ones, without counting it. A number written there is
// stored as its text and is a key like any other.
//
// # Output format
//
// The text output of list, ns and watch is line-oriented and unambiguous:
// a key, value or namespace is printed as it is when it is valid UTF-8,
// holds only printable characters (strconv.IsPrint: letters, marks,
// numbers, punctuation, symbols and the ASCII space) and does not begin
// with a double quote. Any other one (holding a tab, a newline, a control
// character, invalid UTF-8, or beginning with ") is printed quoted by
// strconv.Quote, and strconv.Unquote gives back its exact bytes. An empty
// value prints as nothing after the tab. get, in contrast, prints the value
// raw.
//
// list -json prints strings the way encoding/json does, except that <, >
// and & are not escaped; decoding its output gives back the exact keys and
// values. Its output is exact or absent: JSON strings cannot hold invalid
// UTF-8 (encoding/json would replace it with U+FFFD, altering values and
// merging keys that differ only in invalid bytes), so when any key or value
// of the listing is not valid UTF-8, list -json prints nothing on standard
// output, names the first such key (quoted by strconv.Quote) on standard
// error and exits 1. The text output, or get, prints such strings exactly.
// watch -json prints strings the same way and, for the same reason, fails
// with exit status 1 at the first change whose key or value is not valid
// UTF-8, naming the key on standard error; the changes before it have been
// printed. A namespace that is not valid UTF-8 is bad usage with -json.
//
// # Exit status
//
//	0  success; also for -h, -help and help, which print the usage on
//	   standard output, and for watch and serve ended by SIGINT or SIGTERM
//	1  get found no live key (nothing is printed), or the command failed:
//	   the database could not be opened (the path is a directory, lies in a
//	   missing directory, or is not an SQLite database, or a verb other
//	   than set and serve found nothing at the path; PostgreSQL could not be reached
//	   within 10 seconds or refused the login; this command speaks SQLite
//	   only), standard input could not be read or held a value longer
//	   than 1,000,000,000 bytes, list -json or watch -json
//	   met a key or value that is not valid UTF-8, or a read or write
//	   failed (watch's output included: a pipe whose reader has gone ends
//	   it so), or serve could not read its token file, refused it, or
//	   could not listen; a message is printed on standard error
//	2  bad usage: a missing or unknown verb, a wrong number of arguments, an
//	   empty namespace, key or -db path, a key=value connection string in
//	   -db or OPSTATE_DB, an unknown flag, a -ttl that is not a positive
//	   duration, watch -json of a namespace that is not valid UTF-8, serve
//	   without -tokens on an address that is not loopback, or token with a
//	   scope other than read or write; a
//	   message is printed on standard error, nothing on standard output,
//	   and the database is not opened (nor created)
//
// # Examples
//
//	opstate set flags dark_mode on
//	opstate get flags dark_mode                 # on
//	opstate set -ttl 10m locks deploy alice
//	opstate -db /var/lib/app/state.db list -json flags
//	OPSTATE_DB=postgres://app@db1/ops opstate ns     # the pgstate build
//	opstate watch flags                         # set<TAB>dark_mode<TAB>off ...
//	opstate set certs site.pem - < site.pem
//	opstate token dashboard read 2>>tokens      # prints the secret
//	opstate serve -addr 0.0.0.0:8047 -tokens tokens
package main
