package pgdb

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
)

// channelSQL is the LISTEN channel of the schema named by the SQL
// expression schema: one per schema, so that Stores in different schemas
// of one database do not hear each other.
func channelSQL(schema string) string {
	return `'opstate_' || left(md5(` + schema + `), 16)`
}

// originSQL names the transaction it runs in after the DB of origin $1:
// the notifications of its changes carry the name, and the DB's own
// listeners skip them; and it sets the actor its changes are recorded
// with in history to $2 (history_schema.go), until actorSQL sets another.
// Every transaction of a DB that writes runs it, or applyOriginSQL, first:
// the settings ride on one statement, in the batch's one round trip.
const originSQL = `SELECT set_config('opstate.origin', $1, true), set_config('opstate.actor', $2, true)`

// applyOriginSQL is originSQL for a batch of Apply, whose writes change
// rows of the namespaces $3 only (each named once): it turns the record
// trigger off for the transaction when none of them keeps history, and
// when the batch has one namespace and it keeps history (a lone Set, the
// group commit of Sets to one namespace) tells the record function to
// record every row without its probe of the keep table ('all'; see
// history_schema.go). A batch of several namespaces some of which keep
// history is 'on': the function probes for each row. (Checking that
// every one of several namespaces keeps history would take a count, or
// an anti-join, whose cost depends on the length of $3: the server would
// then plan the statement anew for every batch, some 30 µs, rather than
// reuse its generic plan; docs/performance.md, "One index".)
const applyOriginSQL = `SELECT set_config('opstate.origin', $1, true), set_config('opstate.actor', $2, true),
	set_config('opstate.record', CASE WHEN NOT EXISTS (SELECT 1 FROM operational_state_history_keep
		WHERE namespace = ANY($3::text[])) THEN 'off' WHEN cardinality($3::text[]) = 1 THEN 'all' ELSE 'on' END, true)`

// actorSQL sets the actor of the rest of the transaction's changes to $1.
const actorSQL = `SELECT set_config('opstate.actor', $1, true)`

// newOrigin returns a name no other DB will have.
func newOrigin() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

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

// payload is a notification's JSON, as the triggers write it (see
// triggerFuncsSQL).
type payload struct {
	O string            `json:"o"`
	C []json.RawMessage `json:"c"`
}

// decode reads a payload of the triggers: the changes it reports, each
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
