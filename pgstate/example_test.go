package pgstate_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/pgstate"
)

// An agent of a fleet: toggles read from memory, a lease shared by every
// agent, and the changes other agents (or an operator with psql) make,
// as they happen.
func ExampleOpen() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := pgstate.Open(ctx, "postgres://agent@db.internal/ops?sslmode=verify-full", opstate.Options{})
	if err != nil {
		log.Fatal(err) // the cause is named; the password never is
	}
	defer s.Close()

	on, err := s.Get("flags", "dark_mode") // from memory once cached
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("dark mode:", on)

	// One agent of the fleet holds the poller's lease at a time.
	if ok, err := s.SetIfAbsentWithTTL("leases", "poller", "host-a", time.Minute); err == nil && ok {
		fmt.Println("this agent polls")
	}

	events, err := s.Watch(ctx, "flags")
	if err != nil {
		log.Fatal(err)
	}
	for ev := range events {
		fmt.Println(ev.Op, ev.Key, ev.Value)
	}
}
