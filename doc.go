// Package opstate is a namespaced key-value store for persistent
// operational state: poller high-water marks, feature toggles, session
// preferences — small data that must survive restarts.
//
// A [Store] keeps its data in one SQLite file (table operational_state,
// readable and editable with the sqlite3 shell) and serves reads from
// memory:
//
//	s, err := opstate.NewStore("state.db")
//	...
//	defer s.Close()
//	if err := s.Set("flags", "dark_mode", "true"); err != nil { ... }
//	v, err := s.Get("flags", "dark_mode") // "true", from memory
//
// For tests, NewStore(":memory:") opens a store held in memory alone,
// private to that Store (see [Open]).
//
// For agents on many machines, module github.com/d8da9184/opstate/pgstate
// opens the same Store over PostgreSQL, whose trigger and LISTEN keep
// every agent's cache coherent. Another database can be plugged in the
// same way: package [github.com/d8da9184/opstate/storage] is the contract,
// [OpenBackend] the constructor. What this documentation says of SQLite
// holds of the Store on a file; pgstate's documentation says what differs.
//
// An application that already reaches its SQLite file through a
// database/sql driver of its own (github.com/mattn/go-sqlite3,
// github.com/ncruces/go-sqlite3, modernc.org/sqlite) gives its *sql.DB to
// [OpenDB]: the Store then works through the application's copy of
// SQLite, the one that may touch the file, and keeps every guarantee
// below except the three OpenDB lists.
//
// # Reads
//
// [Store.Get] looks the key up in a bounded in-memory cache (package
// [github.com/d8da9184/opstate/internal/cache]); a key found there costs no I/O, no
// allocation and no exclusive lock. A miss reads SQLite once and caches the
// answer, including the answer "absent", so a hot lookup of a toggle that is
// not set reaches SQLite once. [Store.List], [Store.ListItems] (List with
// each key's expiry) and [Store.Namespaces] always read SQLite. [Store.Stats] counts the reads answered from memory and
// those that went to SQLite, with the writes, evictions and sweeps.
//
// # Writes
//
// [Store.Set], [Store.SetWithTTL], [Store.Delete] and
// [Store.DeleteNamespace] commit to SQLite before they return, and update
// the cache only after the commit. Writes that arrive together share one
// transaction (group commit), and each returns only after that transaction
// committed. The conditional writes — [Store.SetIfAbsent],
// [Store.CompareAndSwap], [Store.CompareAndDelete] and their WithTTL
// variants — are writes like these, decided by SQLite in the write's
// transaction: the building blocks of leases and of marks that only move
// forward.
//
// # Changes
//
// Every change to the table, by this Store or anyone else writing the file
// (plain SQL included), is recorded in the file's change log in the
// writing transaction. A Store drops from its cache only the keys others
// changed, and [Store.Watch] sends the changes of a namespace as events:
// this Store's at once, others' within [Options.SyncInterval].
//
// # Expiry
//
// [Store.SetWithTTL] gives a key an absolute expiry, kept to the
// millisecond. An expired key reads as missing at once; its row is deleted
// by [Store.DeleteExpired], which a background sweeper runs every
// [Options.SweepInterval].
//
// # Guarantees
//
//   - A write that returned nil is on disk: it survives a crash or SIGKILL
//     of the process. With [DurabilityFull] it also survives power loss
//     (synced with fsync, or with fdatasync, as durable, under
//     [Options.Fdatasync]).
//     This holds with other Stores, processes and the sqlite3 shell on the
//     same file, with other Opens of it in the same process, and with the
//     application's own connections to it through modernc.org/sqlite, the
//     copy of SQLite opstate uses; on Linux, also with code in the process
//     that opens and closes the database file (see Caveats for where that
//     stops holding, and for other SQLite libraries).
//   - A write that returned an error is not served: reads keep returning
//     the old value, from SQLite. (Two exceptions, below under Caveats: an
//     I/O error during the commit itself, and [ErrForeignSQLite] found as
//     the commit ended.)
//   - On Linux, a file that another SQLite library of the process has open
//     with its WAL index (github.com/mattn/go-sqlite3, say) is refused by
//     Open with [ErrForeignSQLite], and a Store that sees one open it
//     later fails every write from then on with ErrForeignSQLite; a write
//     is acknowledged only if, once it committed, no such library had
//     opened or closed the file's -shm as far as the Store's lock on it
//     shows. Reads go on.
//   - The cache never serves a value SQLite does not hold, for writes made
//     through this Store: once a write to a key returns, every read of
//     that key that starts later sees it or a newer write (each key is
//     linearizable), and two racing writes leave the cache and SQLite
//     agreeing.
//   - The conditional writes ([Store.SetIfAbsent], [Store.CompareAndSwap],
//     [Store.CompareAndDelete] and their WithTTL variants) are decided by
//     SQLite, inside the write's own transaction, against what the file
//     holds, never by a read in Go: of racing calls from any Stores and
//     processes on the file, exactly one SetIfAbsent of an absent key
//     stores and exactly one CompareAndSwap from a value swaps. Each is
//     linearizable per key with every other operation through this Store.
//     One that returns false changes nothing in SQLite, and refreshes this
//     Store's cached entry for the key from what SQLite holds, so that the
//     next read serves another writer's value even before this Store has
//     noticed the write, and a loop of Get and CompareAndSwap converges at
//     once.
//   - A namespace that keeps history ([Store.SetHistory]) has every
//     change to one of its keys recorded in the transaction that makes
//     it, by any writer — this Store, others, the opstate command, plain
//     SQL in the sqlite3 shell — with the value and expiry before and
//     after, the time by the database's clock and the actor
//     ([Options.Actor], [Store.As]; none for plain SQL): a write that
//     returned an error, or a conditional write that changed nothing,
//     records nothing. [Store.Revert] writes only if the key still holds
//     what its latest recorded change left, decided by the database as a
//     conditional write is, and otherwise fails with [ErrConflict],
//     writing nothing. A write to a namespace without history records
//     nothing and costs about what it did before history existed
//     (docs/performance.md).
//   - Memory is bounded: keys, values and per-entry overhead of all
//     namespaces share one budget ([Options.CacheBytes], 32 MiB by
//     default). Evicted keys are read from SQLite again. The changes held
//     for watchers that fall behind are outside the budget, and bounded:
//     the latest change of at most [MaxPendingEvents] keys a watched
//     namespace, held once for all its watchers, and a batch of at most
//     64 events a watcher ([Store.Watch]).
//   - Namespaces are isolated: no byte of a namespace or key is a separator
//     or wildcard. Any Go string round-trips byte for byte.
//   - A namespace and a key are TEXT. A row written by hand whose namespace
//     or key SQLite stores as another type (a BLOB: CAST('k' AS BLOB),
//     x'6b') is no key of the Store, whatever text its bytes spell: Get
//     reports it absent, List and Namespaces leave it out, watchers hear
//     nothing of it, and so does the opstate command; DeleteNamespace and
//     the sweep delete such rows with the others of the namespace, or the
//     other expired ones, without reporting them. A number written into
//     those columns is stored as its text (they have TEXT affinity: 5 is
//     "5") and is a key like any other; NULL is refused by SQLite.
//   - A backup or snapshot restored into the file while Stores have it
//     open — the sqlite3 shell's .restore, SQLite's backup API from any
//     connection — is seen by each Store within [Options.SyncInterval]
//     (by one whose poller sleeps, at its next read, before it answers):
//     it empties its cache and sends every watcher an OpReset, and serves
//     what the file holds from then on, however far the file was taken
//     back and whatever was written to it since. The change log, restored
//     with the file, reuses the positions a Store had read, so the Store
//     tells a restore from the file's schema cookie, which every such
//     rewind changes; so does any other schema change, which is handled
//     the same way (see Caveats).
//   - Open checks the schema objects opstate relies on — the change log,
//     its triggers, the expiry index — and puts back, in one transaction,
//     what was dropped or changed (a trigger dropped in the sqlite3 shell,
//     say): without them, others' writes would go unseen. A table
//     operational_state without opstate's columns as opstate made them is
//     refused with [ErrSchema], untouched (columns an application added,
//     nullable or with a default, are left alone). A Store running when the schema changes checks it at its
//     next check and repairs it the same way, emptying its cache, since
//     writes made meanwhile may not be in the log.
//   - Every method is safe for concurrent use. [Store.Close] stops every
//     goroutine the Store started before it returns.
//   - Close returns within the statement in progress, whatever
//     [Options.BusyTimeout]: a write that waits for another process's
//     lock stops waiting and fails with [ErrClosed], and is not applied,
//     then or later (TestCloseDuringLockWait).
//   - Open touches nothing it refuses: a path that is no regular file (a
//     directory, device, FIFO or socket), a file with several hard links,
//     a file mounted on its own (on Linux: a bind mount of one file, such
//     as docker -v host/state.db:/data/state.db; mount its directory
//     instead), a -wal, -shm or -journal file, a database whose -wal, -shm
//     or -journal is a symbolic link, a mount point or no regular file, a
//     file that is not an SQLite database, and a file of a newer opstate
//     are refused before SQLite writes a byte or creates a file beside
//     them; a file of an earlier opstate is read whole and refused
//     untouched if damaged. The names and mounts refused are those through
//     which one file would get two write-ahead logs (SQLite names the -wal
//     and -shm after the path it opens), or one kept away from the file:
//     every Store on a file, in any process, uses the one -wal beside it,
//     whichever path, symbolic link or mounted directory leads there.
//   - A damaged file is never written to once the damage has been seen:
//     at Open with [Options.VerifyOnOpen], or by any read or write that
//     reached it; from then on every write fails with [ErrCorrupt].
//   - Open of ":memory:" creates nothing on disk, and each such Store is
//     a database of its own; every method works on it, and the promises
//     above other than durability hold. A path beginning with "file:",
//     which SQLite would read as a URI, is refused with [ErrInvalidPath]
//     and creates nothing.
//
// # Caveats
//
//   - An in-memory store (":memory:") is not durable: its data is gone at
//     Close or when the process ends, and nothing else (another Store, a
//     process, the opstate command, the sqlite3 shell) can reach it; use
//     [Store.Backup] to keep a copy. It holds at most 1 GiB (SQLite's
//     memdb limit), beyond which writes fail with [ErrDiskFull]. Its reads
//     that go to SQLite and its writes take turns instead of running side
//     by side.
//   - Writes made through this Store are seen at once; writes committed by
//     anyone else (another Store on the same file, in this process or
//     another, the opstate command, the sqlite3 shell) are seen within
//     [Options.SyncInterval], 5ms by default. Such a write drops from this
//     Store's cache only the keys it changed (or, when it changed more than
//     64 keys of a namespace, that namespace), found in the file's change
//     log; when the log cannot say (this Store fell more than 65536
//     changes behind, or a check failed), the whole cache is dropped.
//   - Any change of the file's schema — a restore, VACUUM, a CREATE,
//     DROP or ALTER of any table, an application's own included — empties
//     the cache of every Store on the file once, and sends their watchers
//     an OpReset: a Store cannot tell it from a restore, after which the
//     change log no longer says what changed. CREATE ... IF NOT EXISTS of
//     what exists, writes to other tables and checkpoints change nothing.
//   - The history keeps a namespace's last keep changes only as of the
//     last sweep: the sweeper deletes older ones (and those of a
//     namespace whose history was turned off) in batches, so between
//     sweeps, or with the sweeper turned off, it holds more. An actor is
//     what the writer says it is: a Store's Options.Actor or the name
//     given to [Store.As], never checked against anything. Writes with
//     triggers turned off are not recorded, as they are not seen.
//   - Only rewinds made through SQLite are seen. A copy put in place of
//     the file with file tools while a Store has it open (cp over it, a
//     file-system snapshot rolled back under it) is not supported: it
//     mixes the old file with the -wal of the new one. Stop the Stores
//     first, or restore with the sqlite3 shell's .restore. Nor are writes
//     below SQL seen (sqlite_dbpage, PRAGMA writable_schema), nor edits of
//     the change log itself.
//   - A connection that turns triggers off for itself (the sqlite3 shell's
//     .dbconfig enable_trigger off, SQLITE_DBCONFIG_ENABLE_TRIGGER) writes
//     without logging: no Store sees its writes until its cache drops
//     the keys for another reason. Nothing in the file shows it, so no
//     Store can detect it; do not turn triggers off on the file.
//   - A file whose change log was dropped fails every write, by anyone
//     (the triggers fail), until a Store puts it back: at Open, or at a
//     running Store's next check, which a Store that nobody reads makes
//     only at its next read.
//   - The change log costs every write a trigger and, per transaction, one
//     more page written to the write-ahead log (docs/performance.md).
//     Checking for others' writes costs a query and a wake-up every
//     SyncInterval while the Store is read or watched; one that nobody
//     has read or watched for 20 intervals stops checking, and its next
//     read checks first (BenchmarkIdleStore).
//   - Expiry follows [Options.Clock]; a clock that jumps backwards revives
//     keys whose rows have not been swept yet. Times are kept to the
//     millisecond within the years 0000 to 9999; a clock outside them reads
//     as the nearest end, where time stands still.
//   - Leases built from the conditional writes are decided by SQLite, but
//     their expiry is judged by each caller's [Options.Clock]. Processes
//     on one machine share the wall clock; Stores whose clocks differ by d
//     (a skewed Options.Clock, or a file shared by machines, which SQLite
//     does not support anyway) let a second holder take a lease d before
//     the first holder's clock says it ran out, so both act as holders for
//     d (TestLeaseClockSkew). A holder should stop acting on a lease a
//     margin longer than any skew before its TTL ends (see the lease
//     Example of [Store.SetIfAbsentWithTTL]).
//   - SQLite's locks are advisory locks, and closing any descriptor of a
//     file drops every POSIX lock the process holds on it. On Linux, the
//     first Open in a process has modernc.org/sqlite take OFD locks on the
//     database file instead, which belong to SQLite's own descriptors:
//     code in the same process that opens and closes the database file
//     (os.ReadFile or io.Copy for a backup, a checksum, a file watcher)
//     then drops nothing (TestFileReadKeepsWrites). The switch is
//     process-wide and must come before the process's first lock:
//     opstate leaves it alone when MODERNC_SQLITE_OFD_LOCK is set (to 0
//     for POSIX locks), and it is too late when the application locked a
//     database through modernc.org/sqlite before the first Open;
//     sqlite.OFDLockingEnabled reports what is in effect. With POSIX locks
//     (those cases, and other systems), such code drops the Store's locks,
//     and another process may then checkpoint and delete the write-ahead
//     log under it: on Linux the Store sees, after each commit, that the
//     log it wrote to is no longer the file at the path, and fails that
//     write and every later one with [ErrForeignSQLite] (restart the
//     process to write again); elsewhere acknowledged writes are lost.
//     The -shm's locks are POSIX locks either way: code that opens and
//     closes the -shm drops them, and a Store on Linux stops writing with
//     ErrForeignSQLite. opstate itself never opens these files outside
//     SQLite. To copy a file that is open, use [Store.Backup] (or the
//     opstate command's backup verb, or the sqlite3 shell's .backup from
//     another process); stat and rename are safe, opening is not.
//   - An Open with [Options.Fdatasync] FdatasyncOn switches
//     modernc.org/sqlite to sync with fdatasync(2) instead of fsync(2),
//     for the whole process: the application's own modernc.org/sqlite
//     connections sync so too from then on (as durably; a seccomp filter
//     that allows fsync alone would fail their commits, and the Store's).
//     opstate never turns it off. Other SQLite libraries are not affected.
//   - Another copy of SQLite in the process (github.com/mattn/go-sqlite3
//     or any cgo SQLite driver, a second vendored copy) cannot share the
//     file: each copy keeps its own record of the process's locks, so they
//     do not exclude each other, and acknowledged writes are lost and the
//     file corrupted. Only modernc.org/sqlite, the copy opstate uses, may
//     open the file in the process; give other code a file of its own, or
//     give the Store the application's *sql.DB with [OpenDB]. On
//     Linux the Store watches for another copy (a second descriptor of the
//     -shm, the Store's lock on the -shm taken over or released, a -wal or
//     -shm deleted or replaced) at Open, after each commit, and in the
//     background while it writes, and stops writing with
//     [ErrForeignSQLite]. A copy that opens the file while another process
//     uses it leaves the Store's lock in place, and is seen by its
//     descriptor, in the background, later. The other library's first
//     open may already have damaged the WAL index, and what it writes
//     afterwards it writes alone. The Store cannot see
//     another copy on other systems, nor one in exclusive locking mode,
//     which opens no -shm (with OFD locks, its locks conflict with the
//     Store's and it gets "database is locked"), nor code that opens the
//     database file or the -wal alone (the application's own connections
//     open them too). A write that fails with ErrForeignSQLite
//     because the check after its commit found the other library may
//     still be in the file, as with [ErrIO].
//   - Open tells a file mounted on its own from the kernel's list of
//     mounts (/proc/self/mountinfo), on Linux only, and reads it at every
//     Open: a cost that grows with the number of mounts the process sees
//     (docs/performance.md, BenchmarkCheckPlace in internal/persist). Where that list
//     cannot be read (no /proc), and on other systems, such a file is not
//     refused. Nor is a file reached under two names no check can see: a
//     copy put in its place while a Store has it open, or one file shared
//     over a network file system by Stores on two machines, which SQLite's
//     write-ahead log does not support.
//   - Without [Options.VerifyOnOpen], damage inside the file that Open's
//     checks (header, size, schema) cannot see is found only when a read
//     or write reaches it; until then writes to sound pages succeed and
//     change the file. VerifyOnOpen reads the whole file at every Open
//     (BenchmarkOpenLarge measures what that costs a file of a million
//     rows).
//   - Values are stored as SQLite TEXT without validation; bytes that are
//     not UTF-8 round-trip through opstate but may display oddly in tools.
//   - Under a stream of writes, the write-ahead log is checkpointed in the
//     background every 1024 frames, and the last pass of each checkpoint
//     holds this Store's writes, and its reads that go to SQLite, off for a
//     few milliseconds (docs/guarantees.md, "What it does not promise").
//   - A write whose commit fails with an I/O error (a failed fsync, say)
//     returns [ErrIO], yet its WAL frames may already be on disk: after a
//     restart, or if SQLite read them back, the write can appear. The
//     cache holds nothing for the key, so reads always return what SQLite
//     holds. A disk that fills up just as SQLite must grow the WAL index
//     (the -shm file, every 4096 frames of WAL) fails a write this way
//     too, with ErrIO rather than [ErrDiskFull].
//   - A database that cannot be written (a read-only mount, a file system
//     the kernel turned read-only after an error, files or a directory
//     this process may not write) fails every write with [ErrReadOnly];
//     reads go on being served, but on a read-only mount [Open] fails
//     unless the file's -shm is there. A file system that turns read-only
//     discards what the kernel had not yet written: with
//     [DurabilityNormal], writes acknowledged since the last checkpoint
//     can be lost, as on power loss.
package opstate
