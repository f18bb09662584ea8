package pgstate_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/pgstate/internal/pgtest"
)

// TestTwoProcesses runs a Store in this process and one in a child
// process on the same schema, each having cached the keys the other
// writes: each serves the other's writes within the bound; and when both
// race a SetIfAbsent or a CompareAndSwap on the same key, exactly one
// wins, and both then serve the winner's value.
func TestTwoProcesses(t *testing.T) {
	dsn := pgtest.Schema(t)
	s := open(t, dsn, opstate.Options{})
	c := startChild(t, dsn)
	const bound = time.Second
	var worst time.Duration
	for i := range 30 {
		v := strconv.Itoa(i)
		c.do("get", "conv", "mine")
		set(t, s, "conv", "mine", v)
		if r := c.do("wait", "conv", "mine", v); r != "ok" {
			t.Fatalf("round %d: child never served this process's write: %s", i, r)
		}
		get(t, s, "conv", "theirs")
		c.do("set", "conv", "theirs", v)
		worst = max(worst, eventually(t, bound, "this process serves the child's write", func() bool { return get(t, s, "conv", "theirs") == v }))
	}
	t.Logf("worst wait for the child's write: %v", worst)

	// The child's request is sent first and its reply read after this
	// process's call returned, so that the two calls overlap.
	ops := []struct {
		name  string
		prep  func(key string)
		local func(key string) (bool, error)
		child func(key string) []string
	}{
		{"SetIfAbsent", func(string) {},
			func(key string) (bool, error) { return s.SetIfAbsent("race", key, "parent") },
			func(key string) []string { return []string{"setifabsent", "race", key, "child"} }},
		{"CompareAndSwap", func(key string) { set(t, s, "race", key, "0") },
			func(key string) (bool, error) { return s.CompareAndSwap("race", key, "0", "parent") },
			func(key string) []string { return []string{"cas", "race", key, "0", "child"} }},
	}
	for _, o := range ops {
		wins := map[string]int{}
		for i := range 50 {
			key := o.name + strconv.Itoa(i)
			o.prep(key)
			// Both cache the key before the race.
			if v := get(t, s, "race", key); v != "" {
				c.do("wait", "race", key, v)
			} else {
				c.do("get", "race", key)
			}
			c.send(o.child(key)...)
			mine, err := o.local(key)
			if err != nil {
				t.Fatalf("%s: %v", o.name, err)
			}
			theirs := c.reply()
			winner := ""
			switch {
			case mine && theirs == "false":
				winner = "parent"
			case !mine && theirs == "true":
				winner = "child"
			default:
				t.Fatalf("%s round %d: this process won: %v, the child: %s; want exactly one winner", o.name, i, mine, theirs)
			}
			wins[winner]++
			if got := get(t, s, "race", key); got != winner {
				t.Errorf("%s round %d: this process serves %q; want the winner's %q", o.name, i, got, winner)
			}
			if r := c.do("wait", "race", key, winner); r != "ok" {
				t.Errorf("%s round %d: the child never served the winner's %q", o.name, i, winner)
			}
		}
		t.Logf("%s: wins %v", o.name, wins)
	}
}
