package pgdb

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// channelSQL is the LISTEN channel of the schema named by the SQL
// expression schema: one per schema, so that Stores in different schemas
// of one database do not hear each other.
func channelSQL(schema string) string {
	return `'opstate_' || left(md5(` + schema + `), 16)`
}

// notifyTrigger notifies every row a statement inserts, updates or deletes,
// from psql too. The payload is a JSON array, text whatever the strings
// hold: [namespace, key]; [namespace] when that exceeds what pg_notify
// carries (8000 bytes; 7900 leaves room), which means anything in the
// namespace may have changed; [] when even the namespace does, anything at
// all. An update that renames a row notifies its old key too.
var notifyTrigger = `
CREATE FUNCTION operational_state_notify_key(sch text, ns text, k text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	ch text := ` + channelSQL("sch") + `;
	p text := json_build_array(ns, k)::text;
BEGIN
	IF octet_length(p) > 7900 THEN
		p := json_build_array(ns)::text;
		IF octet_length(p) > 7900 THEN
			p := '[]';
		END IF;
	END IF;
	PERFORM pg_notify(ch, p);
END $$;
CREATE FUNCTION operational_state_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP <> 'INSERT' THEN
		PERFORM operational_state_notify_key(TG_TABLE_SCHEMA, OLD.namespace, OLD.key);
	END IF;
	IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.namespace <> OLD.namespace OR NEW.key <> OLD.key) THEN
		PERFORM operational_state_notify_key(TG_TABLE_SCHEMA, NEW.namespace, NEW.key);
	END IF;
	RETURN NULL;
END $$;
CREATE TRIGGER operational_state_notify AFTER INSERT OR UPDATE OR DELETE ON operational_state
	FOR EACH ROW EXECUTE FUNCTION operational_state_notify();
`

// Change is one notification: what may have changed.
type Change struct {
	// Scope says how much: ScopeKey (Namespace and Key), ScopeNamespace
	// (anything in Namespace) or ScopeAll (anything).
	Scope          Scope
	Namespace, Key string
}

// Scope is how much a [Change] covers.
type Scope uint8

const (
	// ScopeKey: Namespace/Key may have changed.
	ScopeKey Scope = iota
	// ScopeNamespace: any key of Namespace may have changed (the key was
	// too long for a payload).
	ScopeNamespace
	// ScopeAll: anything may have changed.
	ScopeAll
)

// Listener receives the change notifications of a DB's schema on a
// connection of its own. It is not safe for concurrent use.
type Listener struct {
	conn *pgx.Conn
}

// Listen opens a dedicated connection, with the pool's configuration, that
// LISTENs to every change of the DB's schema. Notifications are lossy:
// when the connection drops, the caller must assume anything changed.
func (db *DB) Listen(ctx context.Context) (*Listener, error) {
	conn, err := pgx.ConnectConfig(ctx, db.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("opstate: listen: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{db.channel}.Sanitize()); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("opstate: listen: %w", err)
	}
	return &Listener{conn: conn}, nil
}

// Next waits for the next notification and decodes it. A payload it
// cannot decode (not opstate's) is reported as ScopeAll.
func (l *Listener) Next(ctx context.Context) (Change, error) {
	n, err := l.conn.WaitForNotification(ctx)
	if err != nil {
		return Change{}, err
	}
	return decode(n.Payload), nil
}

// decode reads a payload of notifyTrigger.
func decode(payload string) Change {
	var a []string
	if err := json.Unmarshal([]byte(payload), &a); err != nil {
		return Change{Scope: ScopeAll}
	}
	switch len(a) {
	case 2:
		return Change{Scope: ScopeKey, Namespace: a[0], Key: a[1]}
	case 1:
		return Change{Scope: ScopeNamespace, Namespace: a[0]}
	}
	return Change{Scope: ScopeAll}
}

// Close closes the listener's connection.
func (l *Listener) Close(ctx context.Context) error {
	return l.conn.Close(ctx)
}
