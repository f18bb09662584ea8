package opstate

import (
	"fmt"
	"os"
	"os/user"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/d8da9184/opstate/storage"
)

// A Writer writes to its Store recorded as a given actor, in the history
// of the namespaces that keep one (see [Store.SetHistory]): a server that
// writes on behalf of its callers makes one per caller, named after it.
// Its methods are the Store's, with the Store's signatures and guarantees;
// the Store's own methods write as [Options.Actor]. Over a backend that
// keeps no history, the actor is recorded nowhere. A Writer is safe for
// concurrent use, costs nothing to keep, and needs no closing: it is as
// good as its Store.
type Writer struct {
	s     *Store
	actor string
	err   error // the actor's, when As refused it: every write returns it
}

// As returns a Writer that writes to s recorded as actor; "" writes as
// the Store does ([Options.Actor]). An actor with a control character,
// invalid UTF-8 or over 256 bytes is refused: every write of the Writer
// returns [ErrInvalidOption], and writes nothing.
func (s *Store) As(actor string) *Writer {
	if actor == "" {
		return &s.self
	}
	if err := checkActor(actor); err != nil {
		return &Writer{s: s, err: err}
	}
	return &Writer{s: s, actor: actor}
}

// Actor returns who w's writes are recorded as.
func (w *Writer) Actor() string { return w.actor }

// maxActor is the longest actor, in bytes.
const maxActor = 256

// checkActor refuses an actor that a history could not show as it is.
func checkActor(actor string) error {
	switch {
	case len(actor) > maxActor:
		return fmt.Errorf("%w: actor of %d bytes (at most %d)", ErrInvalidOption, len(actor), maxActor)
	case !utf8.ValidString(actor):
		return fmt.Errorf("%w: actor %q is not valid UTF-8", ErrInvalidOption, actor)
	}
	for _, r := range actor {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: actor %q has a control character", ErrInvalidOption, actor)
		}
	}
	return nil
}

// defaultActor is "USER@HOST": the user name os/user finds, else $USER,
// and the host name; what of them is unknown is left out.
func defaultActor() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	host, _ := os.Hostname()
	a := name
	if host != "" {
		a += "@" + host
	}
	if checkActor(a) != nil {
		return "" // a name no history could show: no actor rather than none of the Store's writes
	}
	return a
}

// Set is [Store.Set], recorded as w's actor.
func (w *Writer) Set(namespace, key, value string) error {
	if err := w.check(namespace, key); err != nil {
		return err
	}
	_, err := w.s.write(storage.Write{Kind: storage.Put, Namespace: namespace, Key: key, Value: value, Actor: w.actor}, "set")
	return err
}

// SetWithTTL is [Store.SetWithTTL], recorded as w's actor.
func (w *Writer) SetWithTTL(namespace, key, value string, ttl time.Duration) error {
	exp, err := w.ttlExpiry(ttl, namespace, key)
	if err != nil {
		return err
	}
	_, err = w.s.write(storage.Write{Kind: storage.Put, Namespace: namespace, Key: key, Value: value, ExpiresAt: exp, Actor: w.actor}, "set")
	return err
}

// Delete is [Store.Delete], recorded as w's actor.
func (w *Writer) Delete(namespace, key string) error {
	if err := w.check(namespace, key); err != nil {
		return err
	}
	_, err := w.s.write(storage.Write{Kind: storage.Delete, Namespace: namespace, Key: key, Actor: w.actor}, "delete")
	return err
}

// DeleteNamespace is [Store.DeleteNamespace], recorded as w's actor.
func (w *Writer) DeleteNamespace(namespace string) error {
	if err := w.check(namespace); err != nil {
		return err
	}
	_, err := w.s.write(storage.Write{Kind: storage.DeleteNamespace, Namespace: namespace, Actor: w.actor}, "delete namespace")
	return err
}

// SetIfAbsent is [Store.SetIfAbsent], recorded as w's actor.
func (w *Writer) SetIfAbsent(namespace, key, value string) (stored bool, err error) {
	if err := w.check(namespace, key); err != nil {
		return false, err
	}
	return w.s.write(storage.Write{Kind: storage.PutIfAbsent, Namespace: namespace, Key: key, Value: value, Actor: w.actor}, "set if absent")
}

// SetIfAbsentWithTTL is [Store.SetIfAbsentWithTTL], recorded as w's
// actor.
func (w *Writer) SetIfAbsentWithTTL(namespace, key, value string, ttl time.Duration) (stored bool, err error) {
	exp, err := w.ttlExpiry(ttl, namespace, key)
	if err != nil {
		return false, err
	}
	return w.s.write(storage.Write{Kind: storage.PutIfAbsent, Namespace: namespace, Key: key, Value: value, ExpiresAt: exp, Actor: w.actor}, "set if absent")
}

// CompareAndSwap is [Store.CompareAndSwap], recorded as w's actor.
func (w *Writer) CompareAndSwap(namespace, key, old, new string) (swapped bool, err error) {
	if err := w.check(namespace, key); err != nil {
		return false, err
	}
	return w.s.write(storage.Write{Kind: storage.Swap, Namespace: namespace, Key: key, Old: old, Value: new, Actor: w.actor}, "compare and swap")
}

// CompareAndSwapWithTTL is [Store.CompareAndSwapWithTTL], recorded as w's
// actor.
func (w *Writer) CompareAndSwapWithTTL(namespace, key, old, new string, ttl time.Duration) (swapped bool, err error) {
	exp, err := w.ttlExpiry(ttl, namespace, key)
	if err != nil {
		return false, err
	}
	return w.s.write(storage.Write{Kind: storage.Swap, Namespace: namespace, Key: key, Old: old, Value: new, ExpiresAt: exp, Actor: w.actor}, "compare and swap")
}

// CompareAndDelete is [Store.CompareAndDelete], recorded as w's actor.
func (w *Writer) CompareAndDelete(namespace, key, old string) (deleted bool, err error) {
	if err := w.check(namespace, key); err != nil {
		return false, err
	}
	return w.s.write(storage.Write{Kind: storage.DeleteIf, Namespace: namespace, Key: key, Old: old, Actor: w.actor}, "compare and delete")
}

// check checks a write's names, and w's actor. A closed Store says so
// first, bad input or not.
func (w *Writer) check(names ...string) error {
	if err := w.s.checkNames(names...); err != nil {
		return err
	}
	return w.err
}

// ttlExpiry is Store.ttlExpiry after w's own check.
func (w *Writer) ttlExpiry(ttl time.Duration, names ...string) (int64, error) {
	if err := w.check(names...); err != nil {
		return 0, err
	}
	return w.s.ttlExpiry(ttl, names...)
}
