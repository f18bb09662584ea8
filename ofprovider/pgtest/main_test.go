package pgtest_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/isolated"
)

// ns is the namespace of the flags.
const ns = "flags"

// TestMain fails the run if a goroutine of a Provider or of a Store is
// still alive once every test has shut its providers down and closed its
// Stores.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := goroutinesAfter(2*time.Second, "github.com/d8da9184/opstate"); len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "goroutines outlived their Provider or Store:\n%s\n", strings.Join(leaked, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// goroutinesAfter waits up to timeout for the goroutines, other than the
// caller's and those of tests, that run code whose name contains frame
// to end, and returns the stacks of those still running.
func goroutinesAfter(timeout time.Duration, frame string) []string {
	deadline := time.Now().Add(timeout)
	for {
		buf := make([]byte, 1<<20)
		for {
			n := runtime.Stack(buf, true)
			if n < len(buf) {
				buf = buf[:n]
				break
			}
			buf = make([]byte, 2*len(buf))
		}
		var found []string
		for _, g := range strings.Split(string(buf), "\n\n")[1:] { // [0] is the caller's
			if strings.Contains(g, frame) && !strings.Contains(g, "pgtest_test.Test") && !strings.Contains(g, "testing.tRunner") {
				found = append(found, g)
			}
		}
		if len(found) == 0 || time.Now().After(deadline) {
			return found
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustSet(t testing.TB, s *opstate.Store, key, value string) {
	t.Helper()
	if err := s.Set(ns, key, value); err != nil {
		t.Fatalf("Set(%q, %q, %q): %v", ns, key, value, err)
	}
}

// setProvider sets p as the default provider of a new OpenFeature API,
// shut down at cleanup (which shuts p down), waits for its Init, and
// returns a client of it.
func setProvider(t testing.TB, p openfeature.FeatureProvider) *openfeature.Client {
	t.Helper()
	api := isolated.NewAPI()
	t.Cleanup(func() { api.Shutdown(context.Background()) })
	if err := api.SetProviderAndWait(context.Background(), p); err != nil {
		t.Fatalf("SetProviderAndWait: %v", err)
	}
	return api.NewClient()
}

// wantBool fails the test unless the client evaluates flag to want,
// found (STATIC).
func wantBool(t *testing.T, c *openfeature.Client, flag string, want bool) {
	t.Helper()
	d, err := c.BooleanValueDetails(context.Background(), flag, !want, openfeature.EvaluationContext{})
	if err != nil || d.Value != want || d.Reason != openfeature.StaticReason {
		t.Errorf("BooleanValueDetails(%q) = %v, %s, %v; want %v, STATIC, nil", flag, d.Value, d.Reason, err, want)
	}
}
