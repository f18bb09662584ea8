package main

import (
	"database/sql"
	"errors"
	"fmt"
	"github.com/d8da9184/opstate"
	"net/url"
	"time"

	_ "modernc.org/sqlite"
)

// sqliteOnly is the design opstate replaced, rebuilt here for comparison:
// every Get is a point query and every Set its own autocommit transaction,
// on a plain *sql.DB pool, with the same file format and pragmas as opstate.
type sqliteOnly struct {
	db     *sql.DB
	get    *sql.Stmt
	upsert *sql.Stmt
}

// sqliteConns is the size of sqliteOnly's pool: enough connections for the
// eight concurrent writers and the parallel readers, all kept open.
const sqliteConns = 8

// timeLayout is the timestamp form opstate stores.
const timeLayout = "2006-01-02T15:04:05.000Z"

func openSQLiteOnly(path string, sync durability) (*sqliteOnly, error) {
	// opstate creates the file, so that the table, its index and the
	// journal mode are exactly opstate's and a write maintains the same
	// B-trees; from then on the file is used only through database/sql
	// (and init drops the change log).
	st, err := opstate.Open(path, opstate.Options{SweepInterval: -1, SyncInterval: -1})
	if err != nil {
		return nil, err
	}
	if err := st.Close(); err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+sync.String()+")")
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(sqliteConns)
	db.SetMaxIdleConns(sqliteConns)
	s := &sqliteOnly{db: db}
	if err := s.init(sync); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite-only %s: %w", path, err)
	}
	return s, nil
}

func (s *sqliteOnly) init(sync durability) error {
	var mode string
	var level int
	if err := s.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		return err
	}
	if err := s.db.QueryRow(`PRAGMA synchronous`).Scan(&level); err != nil {
		return err
	}
	if want := map[durability]int{normal: 1, full: 2}[sync]; mode != "wal" || level != want {
		return fmt.Errorf("pragmas not applied: journal_mode=%s synchronous=%d, want wal and %d", mode, level, want)
	}
	// The bare upsert is the baseline a write of opstate is held to: the
	// table and index alone, without the change log's triggers, which are
	// opstate's and which a store that only reads and writes its own file
	// would not have.
	for _, t := range []string{"insert", "update", "rename", "delete"} {
		if _, err := s.db.Exec(`DROP TRIGGER IF EXISTS operational_state_changes_` + t); err != nil {
			return err
		}
	}
	var err error
	if s.get, err = s.db.Prepare(`SELECT value, expires_at FROM operational_state WHERE namespace = ? AND key = ?`); err != nil {
		return err
	}
	s.upsert, err = s.db.Prepare(`INSERT INTO operational_state (namespace, key, value, updated_at, expires_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (namespace, key) DO UPDATE SET
		value = excluded.value, updated_at = excluded.updated_at, expires_at = excluded.expires_at`)
	return err
}

// Get returns the value of ns/key and whether it exists and has not
// expired, as the SQLite-only opstate did: one query per call.
func (s *sqliteOnly) Get(ns, key string) (string, bool, error) {
	var v string
	var exp sql.NullString
	err := s.get.QueryRow(ns, key).Scan(&v, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	if exp.Valid {
		t, err := time.Parse(time.RFC3339Nano, exp.String)
		if err == nil && !time.Now().Before(t) {
			return "", false, nil
		}
	}
	return v, true, nil
}

// Set upserts ns/key without expiry in its own transaction.
func (s *sqliteOnly) Set(ns, key, value string) error {
	_, err := s.upsert.Exec(ns, key, value, time.Now().UTC().Format(timeLayout), nil)
	return err
}

// fill writes every key of w in one transaction.
func (s *sqliteOnly) fill(w *workload) error {
	tx, err := s.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	st := tx.Stmt(s.upsert)
	now := time.Now().UTC().Format(timeLayout)
	for i, v := range w.values {
		if _, err := st.Exec(namespace, keyName(i), v, now, nil); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (s *sqliteOnly) Close() error {
	for _, st := range []*sql.Stmt{s.get, s.upsert} {
		if st != nil {
			st.Close()
		}
	}
	return s.db.Close()
}
