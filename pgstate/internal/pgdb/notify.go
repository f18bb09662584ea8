package pgdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/d8da9184/opstate/storage"
	"github.com/jackc/pgx/v5"
)

// channelSQL is the LISTEN channel of the schema named by the SQL
// expression schema: one per schema, so that Stores in different schemas
// of one database do not hear each other.
func channelSQL(schema string) string {
	return `'opstate_' || left(md5(` + schema + `), 16)`
}

// originSQL names the transaction it runs in after the DB of origin $1:
// the notifications of its changes carry the name, and the DB's own
// listeners skip them. Every transaction of a DB that writes runs it
// first.
const originSQL = `SELECT set_config('opstate.origin', $1, true)`

// newOrigin returns a name no other DB will have.
func newOrigin() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// notifyTrigger notifies every row a statement inserts, updates or
// deletes, psql's too. A payload is a JSON object, text whatever the
// strings hold: "o" the origin of the transaction (originSQL) when it has
// one, and "c" the changes, each an array: [namespace, key];
// [namespace, key, true] for the delete of a row that had expired by the
// server's clock (a sweep); [namespace] when the key does not fit what
// pg_notify carries (8000 bytes; 7900 leaves room), which means anything
// in the namespace may have changed; [] when even the namespace does not:
// anything at all. An update that renames a row notifies its old key too.
//
// The trigger is a row trigger: one pg_notify per row. Statement-level
// triggers, with one notification for a statement's rows, cost a lone
// upsert a third more here (it fires both the INSERT and the UPDATE
// statement trigger, each with its transition table), while the Store's
// batches already put their Puts in one statement.
var notifyTrigger = `
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

// Change is one notification: what may have changed, and by whom.
type Change struct {
	// Scope says how much: ScopeKey (Namespace and Key), ScopeNamespace
	// (anything in Namespace) or ScopeAll (anything).
	Scope          Scope
	Namespace, Key string
	// Origin names the DB whose transaction made the change; "" for
	// anyone else (psql).
	Origin string
	// Expired: the change deleted a row that had expired (a sweep).
	Expired bool
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

// payload is a notification's JSON, as notifyTrigger writes it.
type payload struct {
	O string            `json:"o"`
	C []json.RawMessage `json:"c"`
}

// decode reads a payload of notifyTrigger: the changes it reports, each
// with its origin. A payload it cannot read (not opstate's) is a change of
// anything.
func decode(s string) []Change {
	var p payload
	if err := json.Unmarshal([]byte(s), &p); err != nil || p.C == nil {
		return []Change{{Scope: ScopeAll}}
	}
	out := make([]Change, 0, len(p.C))
	for _, raw := range p.C {
		c := Change{Scope: ScopeAll, Origin: p.O}
		var e []json.RawMessage
		if json.Unmarshal(raw, &e) == nil && len(e) >= 1 && len(e) <= 3 &&
			json.Unmarshal(e[0], &c.Namespace) == nil {
			c.Scope = ScopeNamespace
			if len(e) >= 2 && json.Unmarshal(e[1], &c.Key) == nil {
				c.Scope = ScopeKey
				if len(e) == 3 {
					json.Unmarshal(e[2], &c.Expired)
				}
			}
		}
		if c.Scope == ScopeAll {
			c.Namespace = ""
		}
		out = append(out, c)
	}
	return out
}

// Listener receives the change notifications of a DB's schema on a
// connection of its own, skipping the DB's own; it implements
// storage.Listener. It is not safe for concurrent use.
type Listener struct {
	conn   *pgx.Conn
	origin string
	own    string // how the payloads of the DB's own changes begin
	ping   time.Duration
}

// Listen opens a dedicated connection, with the pool's configuration, that
// LISTENs to every change of the DB's schema. Notifications are lossy:
// when the connection drops, the caller must assume anything changed.
func (db *DB) Listen(ctx context.Context) (storage.Listener, error) {
	return db.listen(ctx)
}

// listen is Listen, returning the concrete type.
func (db *DB) listen(ctx context.Context) (*Listener, error) {
	ctx, cancel := db.bound(ctx)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, db.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("opstate: listen: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{db.channel}.Sanitize()); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("opstate: listen: %w", classify(err))
	}
	return &Listener{conn: conn, origin: db.origin, own: `{"o":"` + db.origin + `",`, ping: db.ping}, nil
}

// Next waits for the changes of others and reports those of one
// notification. A connection that has delivered nothing for a ping
// interval is pinged, and one that does not answer within another is
// reported as an error: a dead connection is noticed within twice the
// interval, one that the server or the network closed at once.
func (l *Listener) Next(ctx context.Context) (storage.Changes, error) {
	for {
		cs, err := l.wait(ctx)
		if err != nil {
			return storage.Changes{}, err
		}
		if ch, ok := l.report(cs); ok {
			return ch, nil
		}
	}
}

// wait returns the changes of the next notification, pinging the
// connection while none comes.
func (l *Listener) wait(ctx context.Context) ([]Change, error) {
	for {
		wctx, cancel := context.WithTimeout(ctx, l.ping)
		n, err := l.conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil && strings.HasPrefix(n.Payload, l.own):
			continue // the DB's own: skipped before the JSON is read
		case err == nil:
			return decode(n.Payload), nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case !errors.Is(err, context.DeadlineExceeded) || l.conn.IsClosed():
			return nil, fmt.Errorf("opstate: change stream: %w", err)
		}
		pctx, cancel := context.WithTimeout(ctx, l.ping)
		err = l.conn.Ping(pctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("opstate: change stream: no answer to a ping within %v: %w", l.ping, err)
		}
	}
}

// report turns notifications into the Changes they report, less the
// DB's own, and says whether any was left.
func (l *Listener) report(cs []Change) (storage.Changes, bool) {
	var ch storage.Changes
	seen := make(map[storage.Key]bool)
	spaces := make(map[string]bool)
	for _, c := range cs {
		if c.Origin == l.origin {
			continue
		}
		ch.Foreign = true
		switch c.Scope {
		case ScopeAll:
			return storage.Changes{Reset: true, Foreign: true}, true
		case ScopeNamespace:
			if !spaces[c.Namespace] {
				spaces[c.Namespace] = true
				ch.Namespaces = append(ch.Namespaces, c.Namespace)
			}
			continue
		}
		k := storage.Key{Namespace: c.Namespace, Key: c.Key}
		if !seen[k] {
			seen[k] = true
			ch.Keys = append(ch.Keys, k)
		}
		if c.Expired {
			if ch.Expired == nil {
				ch.Expired = make(map[storage.Key]bool)
			}
			ch.Expired[k] = true
		} else {
			delete(ch.Expired, k)
		}
	}
	if len(spaces) > 0 { // a namespace's keys go with it
		keys := ch.Keys[:0]
		for _, k := range ch.Keys {
			if !spaces[k.Namespace] {
				keys = append(keys, k)
			} else {
				delete(ch.Expired, k)
			}
		}
		ch.Keys = keys
	}
	return ch, ch.Foreign
}

// Close closes the listener's connection, waiting at most a ping interval
// for the server to hear it.
func (l *Listener) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), l.ping)
	defer cancel()
	return l.conn.Close(ctx)
}
