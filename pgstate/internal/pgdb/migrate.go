package pgdb

import (
	"context"
	"fmt"

	"github.com/d8da9184/opstate/storage"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations[i] brings a schema at version i to version i+1; each is run
// in Open's one transaction. A migration is never changed once released:
// a database at its version has run it.
var migrations = []string{migrateV1 + notifyTriggerV1, migrateV2, migrateV3, migrateV4}

// migrateV1 creates the table, its expiry index, the version table and the
// trigger that notifies every change (notify.go).
const migrateV1 = `
CREATE TABLE operational_state (
	namespace  text NOT NULL,
	key        text NOT NULL,
	value      text NOT NULL,
	updated_at timestamptz NOT NULL,
	expires_at timestamptz,
	PRIMARY KEY (namespace, key)
);
CREATE INDEX operational_state_expiry ON operational_state (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE operational_state_schema (version int NOT NULL);
INSERT INTO operational_state_schema VALUES (0);
`

// lockClass is the first key of the advisory lock that serializes
// migrations; the second is a hash of the schema.
const lockClass = 0x6f707374 // "opst"

// migrate brings the schema of the connection's search_path to the
// version this package knows, in one transaction under an advisory lock,
// or refuses a newer one before writing anything; then re-creates a
// trigger found missing (repairTriggers) and the history's functions and
// triggers found missing or changed (repairHistory).
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// A statement_timeout of the role is meant for the Store's calls:
		// DDL on a loaded server may take longer, and a migration that
		// times out would fail every Open. ctx bounds it, and lock_timeout
		// (BusyTimeout) its waits for the table's lock.
		if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = 0`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, lockClass); err != nil {
			return err
		}
		var v int
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass('operational_state_schema') IS NOT NULL`).Scan(&exists); err != nil {
			return err
		}
		if exists {
			if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM operational_state_schema`).Scan(&v); err != nil {
				return err
			}
		}
		if v > len(migrations) {
			return fmt.Errorf("%w: schema has version %d, this opstate knows up to %d", storage.ErrSchemaVersion, v, len(migrations))
		}
		for ; v < len(migrations); v++ {
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return fmt.Errorf("migrate to version %d: %w", v+1, err)
			}
			if _, err := tx.Exec(ctx, `UPDATE operational_state_schema SET version = $1`, v+1); err != nil {
				return err
			}
		}
		if err := repairTriggers(ctx, tx); err != nil {
			return err
		}
		return repairHistory(ctx, tx)
	})
}

// notifyTriggerV1 is schema version 1's trigger, which notifies every
// row a statement inserts, updates or deletes with the payloads
// triggerFuncsSQL describes; version 2 replaces its functions.
var notifyTriggerV1 = `
CREATE FUNCTION operational_state_notify_key(ch text, o text, ns text, k text, expired boolean) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	head text := '{' || coalesce('"o":' || to_json(o)::text || ',', '') || '"c":[';
	e text;
BEGIN
	IF expired THEN
		e := json_build_array(ns, k, true)::text;
	ELSE
		e := json_build_array(ns, k)::text;
	END IF;
	IF octet_length(head) + octet_length(e) > 7900 THEN
		e := json_build_array(ns)::text;
		IF octet_length(head) + octet_length(e) > 7900 THEN
			e := '[]';
		END IF;
	END IF;
	PERFORM pg_notify(ch, head || e || ']}');
END $$;
CREATE FUNCTION operational_state_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	ch text := ` + channelSQL("TG_TABLE_SCHEMA") + `;
	o text := nullif(current_setting('opstate.origin', true), '');
BEGIN
	IF TG_OP = 'DELETE' THEN
		PERFORM operational_state_notify_key(ch, o, OLD.namespace, OLD.key, coalesce(OLD.expires_at <= now(), false));
		RETURN NULL;
	END IF;
	IF TG_OP = 'UPDATE' AND (NEW.namespace <> OLD.namespace OR NEW.key <> OLD.key) THEN
		PERFORM operational_state_notify_key(ch, o, OLD.namespace, OLD.key, false);
	END IF;
	PERFORM operational_state_notify_key(ch, o, NEW.namespace, NEW.key, false);
	RETURN NULL;
END $$;
CREATE TRIGGER operational_state_notify AFTER INSERT OR UPDATE OR DELETE ON operational_state
	FOR EACH ROW EXECUTE FUNCTION operational_state_notify();
`
