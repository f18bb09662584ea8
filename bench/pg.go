package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/pgstate"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The PostgreSQL rows run on the server pgstate's tests use: the
// connection string in OPSTATE_PG_DSN, or libpq's PG* variables when it is
// empty (what pg_virtualenv sets). Each store they open lives in a schema
// of its own, created for it and dropped when the stores close.

// pgDSNEnv names the variable that holds the server's connection string.
const pgDSNEnv = "OPSTATE_PG_DSN"

// pgSetupTimeout bounds each step of setting up a PostgreSQL store.
const pgSetupTimeout = time.Minute

// withParam appends a runtime parameter to dsn, a URL or key=value form,
// as pgstate's tests do (internal/pgtest.WithParam).
func withParam(dsn, k, v string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return dsn + sep + k + "=" + v
	}
	return strings.TrimSpace(dsn + " " + k + "=" + v)
}

// pgServer is the server of the PostgreSQL rows and the schemas they
// created on it.
type pgServer struct {
	dsn string

	mu      sync.Mutex      // guards schemas
	schemas map[string]bool // created and not yet dropped
}

// connectPG finds the server, or returns why there is none.
func connectPG() (*pgServer, error) {
	dsn := os.Getenv(pgDSNEnv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer c.Close(ctx)
	if err := c.Ping(ctx); err != nil {
		return nil, err
	}
	return &pgServer{dsn: dsn, schemas: map[string]bool{}}, nil
}

// newSchema creates a schema of a random name and returns it and a
// connection string whose search_path it is.
func (p *pgServer) newSchema(ctx context.Context) (schema, dsn string, err error) {
	b := make([]byte, 6)
	rand.Read(b)
	schema = "opstate_bench_" + hex.EncodeToString(b)
	c, err := pgx.Connect(ctx, p.dsn)
	if err != nil {
		return "", "", err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", "", err
	}
	p.mu.Lock()
	p.schemas[schema] = true
	p.mu.Unlock()
	return schema, withParam(p.dsn, "search_path", schema), nil
}

// drop drops schemas created by newSchema and not dropped yet, with
// everything in them; without arguments, every one.
func (p *pgServer) drop(schemas ...string) error {
	p.mu.Lock()
	if len(schemas) == 0 {
		for s := range p.schemas {
			schemas = append(schemas, s)
		}
	}
	var todo []string
	for _, s := range schemas {
		if p.schemas[s] {
			todo = append(todo, s)
			delete(p.schemas, s)
		}
	}
	p.mu.Unlock()
	if len(todo) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, p.dsn)
	if err != nil {
		return fmt.Errorf("dropping schemas %s: %w", strings.Join(todo, ", "), err)
	}
	defer c.Close(ctx)
	var errs []error
	for _, s := range todo {
		if _, err := c.Exec(ctx, "DROP SCHEMA "+s+" CASCADE"); err != nil {
			errs = append(errs, fmt.Errorf("dropping schema %s: %w", s, err))
		}
	}
	return errors.Join(errs...)
}

// pgSchema creates a schema for one store, dropped when the stores close
// (after the store, which is opened later and so closed earlier).
func (s *stores) pgSchema(ctx context.Context) (schema, dsn string, err error) {
	if s.pg == nil {
		return "", "", errors.New("no PostgreSQL server")
	}
	schema, dsn, err = s.pg.newSchema(ctx)
	if err != nil {
		return "", "", err
	}
	s.closers = append(s.closers, func() error { return s.pg.drop(schema) })
	return schema, dsn, nil
}

// pgStore opens a Store with pgstate.Open on a schema of its own, closed
// when the stores close, and returns it and its connection string.
func (s *stores) pgStore(ctx context.Context) (*opstate.Store, string, error) {
	_, dsn, err := s.pgSchema(ctx)
	if err != nil {
		return nil, "", err
	}
	st, err := pgstate.Open(ctx, dsn, opstate.Options{SweepInterval: -1})
	if err != nil {
		return nil, "", err
	}
	s.closers = append(s.closers, st.Close)
	return st, dsn, nil
}

// openOpstatePG opens the Store of pgstate.Open on a schema of its own and
// warms it as openOpstate does.
func (s *stores) openOpstatePG() error {
	if s.opstatePG != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), pgSetupTimeout)
	defer cancel()
	st, _, err := s.pgStore(ctx)
	if err != nil {
		return err
	}
	s.opstatePG = st
	return warmOpstate(st, s.w, "opstate-pg")
}

// openOpstatePGHistory opens a Store as openOpstatePG does, whose
// namespace keeps historyKeep changes (never pruned during a run: the
// Store does not sweep), and warms it.
func (s *stores) openOpstatePGHistory() error {
	if s.opstatePGHistory != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), pgSetupTimeout)
	defer cancel()
	st, _, err := s.pgStore(ctx)
	if err != nil {
		return err
	}
	if err := st.SetHistory(namespace, historyKeep); err != nil {
		return err
	}
	s.opstatePGHistory = st
	return warmOpstate(st, s.w, "opstate-pg-history")
}

// pgxUpsert is the bare upsert of pgx-only: the row opstate writes for a
// Set without TTL (updated_at the server's now(), no expiry), in one
// statement, autocommit.
const pgxUpsert = `INSERT INTO operational_state (namespace, key, value, updated_at, expires_at)
	VALUES ($1, $2, $3, now(), NULL)
	ON CONFLICT (namespace, key) DO UPDATE SET
	value = excluded.value, updated_at = excluded.updated_at, expires_at = excluded.expires_at`

// pgxConns is the size of pgx-only's pool: one connection for each of the
// eight concurrent writers (pgxpool's default is max(4, NumCPU)).
const pgxConns = concurrentWriters

// pgxOnly is bare pgx on opstate's table: a pgxpool and one upsert per
// Set, without the trigger that notifies opstate's listeners.
type pgxOnly struct {
	pool *pgxpool.Pool
}

// bareSchema creates a schema of its own (as pgSchema) and in it opstate's
// table as pgstate.Open does (same columns, key and expiry index), then,
// unless trigger, drops the trigger that notifies every change: the table
// alone, which is what a program that only reads and writes it would have.
func (s *stores) bareSchema(ctx context.Context, trigger bool) (schema, dsn string, err error) {
	schema, dsn, err = s.pgSchema(ctx)
	if err != nil {
		return "", "", err
	}
	st, err := pgstate.Open(ctx, dsn, opstate.Options{SweepInterval: -1, SyncInterval: -1})
	if err != nil {
		return "", "", err
	}
	if err := st.Close(); err != nil {
		return "", "", err
	}
	if trigger {
		return schema, dsn, nil
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", "", err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, `DROP TRIGGER operational_state_notify ON operational_state`); err != nil {
		return "", "", err
	}
	return schema, dsn, nil
}

// openPgxOnly creates a bare table in a schema of its own, fills it with
// the workload in one transaction and opens pgx-only's pool on it.
func (s *stores) openPgxOnly() error {
	if s.pgxOnly != nil {
		return nil
	}
	p, err := s.openPgx(false)
	s.pgxOnly = p
	return err
}

// openPgxTrigger is openPgxOnly with opstate's trigger kept: bare upserts
// that notify every change as opstate's writes do (pgx+trigger).
func (s *stores) openPgxTrigger() error {
	if s.pgxTrigger != nil {
		return nil
	}
	p, err := s.openPgx(true)
	s.pgxTrigger = p
	return err
}

// openPgx makes a pgxOnly on a table of its own, with opstate's trigger or
// without.
func (s *stores) openPgx(trigger bool) (*pgxOnly, error) {
	ctx, cancel := context.WithTimeout(context.Background(), pgSetupTimeout)
	defer cancel()
	_, dsn, err := s.bareSchema(ctx, trigger)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = pgxConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() error { pool.Close(); return nil })
	p := &pgxOnly{pool: pool}
	// Every connection open before timing, as sqlite-only's are.
	var held []*pgxpool.Conn
	for range pgxConns {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		held = append(held, c)
	}
	for _, c := range held {
		c.Release()
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for i, v := range s.w.values {
			b.Queue(pgxUpsert, namespace, keyName(i), v)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return nil, fmt.Errorf("pgx fill: %w", err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM operational_state WHERE namespace = $1`, namespace).Scan(&n); err != nil || n != numKeys {
		return nil, fmt.Errorf("pgx warm-up: %d rows, %v; want %d", n, err, numKeys)
	}
	return p, nil
}

// Set upserts ns/key without expiry in its own transaction.
func (p *pgxOnly) Set(ns, key, value string) error {
	_, err := p.pool.Exec(context.Background(), pgxUpsert, ns, key, value)
	return err
}
