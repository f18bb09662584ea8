package cli

import (
	"errors"
	"os"
	"os/user"
	"unicode"
	"unicode/utf8"
)

// maxActor is the longest actor the library takes, in bytes.
const maxActor = 256

// osUser returns the name of the user running the command, the default
// actor: os/user's, else $USER; "" (the library's own default) if neither
// is known, or is no actor the library takes.
func osUser() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if checkActor(name) != nil {
		return ""
	}
	return name
}

// checkActor refuses what the library would refuse as an actor, so that
// -actor is bad usage before anything is opened: the empty name too, as
// it would stand for the library's default.
func checkActor(a string) error {
	switch {
	case a == "":
		return errors.New("empty actor")
	case len(a) > maxActor:
		return errors.New("longer than 256 bytes")
	case !utf8.ValidString(a):
		return errors.New("not valid UTF-8")
	}
	for _, r := range a {
		if unicode.IsControl(r) {
			return errors.New("holds a control character")
		}
	}
	return nil
}
