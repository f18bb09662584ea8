package opstate_test

import (
	"errors"
	"testing"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/internal/persist"
)

// TestListItemsUnsupported checks that a Store over a backend that cannot
// list expiries returns ErrUnsupported from ListItems, with an empty map,
// and lists as any Store.
func TestListItemsUnsupported(t *testing.T) {
	db, err := persist.Open(dbPath(t), persist.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// noHistory hides every method but Backend's, ListRows too.
	s, err := opstate.OpenBackend(noHistory{db}, opstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustSet(t, s, "ns", "k", "v")
	if got, err := s.ListItems("ns"); got == nil || len(got) != 0 || !errors.Is(err, opstate.ErrUnsupported) {
		t.Errorf("ListItems = %v, %v; want an empty map, ErrUnsupported", got, err)
	}
	if got, err := s.List("ns"); err != nil || got["k"] != "v" {
		t.Errorf("List = %v, %v; want k: v", got, err)
	}
}
