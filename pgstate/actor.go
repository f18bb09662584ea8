package pgstate

import (
	"os"
	"os/user"
	"unicode/utf8"
)

// sweepActor is who the Store's sweeps are recorded as in history: the
// actor of its writes, opts.Actor, or when that is empty the default
// [opstate.Options] documents for it, "USER@HOST" (os/user's user name,
// else $USER, and os.Hostname). The Store resolves the same default for
// its writes; the backend, opened first, needs it for the sweeps, which
// carry no write of the Store's.
func sweepActor(actor string) string {
	if actor != "" {
		return actor
	}
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if host, _ := os.Hostname(); host != "" {
		name += "@" + host
	}
	if len(name) > 256 || !utf8.ValidString(name) {
		return "" // the Store refuses such an actor, and writes with none
	}
	return name
}
