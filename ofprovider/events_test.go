package ofprovider_test

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/ofprovider"
	"github.com/open-feature/go-sdk/openfeature"
)

// wantBool fails the test unless the client evaluates flag to want,
// found (STATIC).
func wantBool(t *testing.T, c *openfeature.Client, flag string, want bool) {
	t.Helper()
	d, err := c.BooleanValueDetails(context.Background(), flag, !want, openfeature.EvaluationContext{})
	if err != nil || d.Value != want || d.Reason != openfeature.StaticReason {
		t.Errorf("BooleanValueDetails(%q) = %v, %s, %v; want %v, STATIC, nil", flag, d.Value, d.Reason, err, want)
	}
}

// wantNotFound fails the test unless the client finds no flag.
func wantNotFound(t *testing.T, c *openfeature.Client, flag string) {
	t.Helper()
	d, err := c.BooleanValueDetails(context.Background(), flag, true, openfeature.EvaluationContext{})
	if err == nil || d.ErrorCode != openfeature.FlagNotFoundCode || !d.Value {
		t.Errorf("BooleanValueDetails(%q) = %v, %s, %v; want the default, FLAG_NOT_FOUND", flag, d.Value, d.ErrorCode, err)
	}
}

// TestToggleFromAnotherStore flips a flag through a second Store on the
// same file, whose writes the provider's Store sees by polling: each
// change reaches a client's PROVIDER_CONFIGURATION_CHANGED handler naming
// the flag, and, since the event is sent once the Store serves the
// change, an evaluation right after the event returns the new value.
func TestToggleFromAnotherStore(t *testing.T) {
	path := dbPath(t)
	s := mustOpenPath(t, path, opstate.Options{})
	other := mustOpenPath(t, path, opstate.Options{})
	mustSet(t, s, "dark_mode", "false")
	c := setProvider(t, ofprovider.New(s, ns))
	changed := record(c, openfeature.ProviderConfigChange)
	wantBool(t, c, "dark_mode", false)

	for i, v := range []string{"true", "false", "1"} {
		mustSet(t, other, "dark_mode", v)
		ev := changed.wait(t, "configuration change naming dark_mode", naming("dark_mode"))
		if ev.ProviderName != ofprovider.Name {
			t.Errorf("event's ProviderName = %q; want %q", ev.ProviderName, ofprovider.Name)
		}
		wantBool(t, c, "dark_mode", i != 1)
	}
	if err := other.Delete(ns, "dark_mode"); err != nil {
		t.Fatal(err)
	}
	changed.wait(t, "configuration change naming the deleted dark_mode", naming("dark_mode"))
	wantNotFound(t, c, "dark_mode")
	// Other namespaces are not the provider's.
	if err := other.Set("other", "dark_mode", "true"); err != nil {
		t.Fatal(err)
	}
	changed.none(t, "after a write to another namespace", 100*time.Millisecond)
}

// TestToggleFromCommand flips a flag with the opstate command, built from
// the root module, as an operator would: each change reaches the
// handler, naming the flag, and the next evaluation serves it.
func TestToggleFromCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the opstate command")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found:", err)
	}
	bin := filepath.Join(t.TempDir(), "opstate")
	if out, err := exec.Command(goTool, "build", "-o", bin, "github.com/d8da9184/opstate/cmd/opstate").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	path := dbPath(t)
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"-db", path}, args...)...)
		cmd.Env = append(cmd.Environ(), "OPSTATE_DB=")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("opstate %q: %v\n%s", args, err, out)
		}
	}
	run("set", ns, "dark_mode", "false") // creates the file
	s := mustOpenPath(t, path, opstate.Options{})
	c := setProvider(t, ofprovider.New(s, ns))
	changed := record(c, openfeature.ProviderConfigChange)
	wantBool(t, c, "dark_mode", false)

	run("set", ns, "dark_mode", "true")
	changed.wait(t, "configuration change naming dark_mode after opstate set", naming("dark_mode"))
	wantBool(t, c, "dark_mode", true)
	run("del", ns, "dark_mode")
	changed.wait(t, "configuration change naming dark_mode after opstate del", naming("dark_mode"))
	wantNotFound(t, c, "dark_mode")
}

// TestResetNamesEveryFlag deletes the namespace: its OpReset is one
// PROVIDER_CONFIGURATION_CHANGED naming every flag it held, those listed
// at Init and those set since, sorted; and a burst of writes arrives as
// events naming each key, none lost.
func TestResetNamesEveryFlag(t *testing.T) {
	s := mustOpen(t, opstate.Options{})
	mustSet(t, s, "b", "true")
	mustSet(t, s, "a", "true")
	c := setProvider(t, ofprovider.New(s, ns))
	changed := record(c, openfeature.ProviderConfigChange)
	mustSet(t, s, "c", "1")
	changed.wait(t, "configuration change naming c", naming("c"))

	if err := s.DeleteNamespace(ns); err != nil {
		t.Fatal(err)
	}
	ev := changed.wait(t, "configuration change of the reset", func(d openfeature.EventDetails) bool { return len(d.FlagChanges) > 1 })
	if want := []string{"a", "b", "c"}; !slices.Equal(ev.FlagChanges, want) {
		t.Errorf("reset's FlagChanges = %q; want %q", ev.FlagChanges, want)
	}
	wantNotFound(t, c, "a")

	// A burst: every key is named by some event.
	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"}
	for _, k := range keys {
		mustSet(t, s, k, "true")
	}
	seen := map[string]bool{}
	for len(seen) < len(keys) {
		for _, k := range changed.wait(t, "configuration changes naming the burst's keys", nil).FlagChanges {
			seen[k] = true
		}
	}
	if len(seen) != len(keys) {
		t.Errorf("events named %v; want exactly %q", seen, keys)
	}
}

// TestShutdownEndsEverything shuts the API down, which shuts the provider
// down: the provider's goroutine has ended when Shutdown returns, the
// Store's watch a moment later, and the Store's writes send nothing.
// Init on another API then follows the namespace again, and a second
// Shutdown without an Init is harmless.
func TestShutdownEndsEverything(t *testing.T) {
	s := mustOpen(t, opstate.Options{})
	p := ofprovider.New(s, ns)
	api := newAPI(t)
	if err := api.SetProviderAndWait(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if g := countGoroutines(time.Second, providerFrame, 1); len(g) != 1 {
		t.Fatalf("%d provider goroutines after Init; want 1", len(g))
	}
	if err := api.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantNoFollower(t, "after Shutdown")
	mustSet(t, s, "t", "true")
	select {
	case ev := <-p.EventChannel():
		t.Errorf("event after Shutdown: %+v", ev)
	case <-time.After(50 * time.Millisecond):
	}
	p.Shutdown()

	c := setProvider(t, p)
	changed := record(c, openfeature.ProviderConfigChange)
	mustSet(t, s, "t", "false")
	changed.wait(t, "configuration change after Init again", naming("t"))
	wantBool(t, c, "t", false)
}

// TestTwoDomains sets one provider for two domains of an API: the SDK
// calls Init twice, and one goroutine follows the namespace, whose
// changes reach the handlers of both domains' clients.
func TestTwoDomains(t *testing.T) {
	s := mustOpen(t, opstate.Options{})
	p := ofprovider.New(s, ns)
	api := newAPI(t)
	var changed []*recorder
	for _, d := range []string{"a", "b"} {
		if err := api.SetProviderAndWait(context.Background(), p, openfeature.WithDomain(d)); err != nil {
			t.Fatal(err)
		}
		changed = append(changed, record(api.NewClient(openfeature.WithDomain(d)), openfeature.ProviderConfigChange))
	}
	if g := countGoroutines(time.Second, providerFrame, 1); len(g) != 1 {
		t.Errorf("%d provider goroutines after two Inits; want 1", len(g))
	}
	mustSet(t, s, "t", "true")
	for i, r := range changed {
		r.wait(t, "configuration change at domain "+string(rune('a'+i)), naming("t"))
	}
	if err := api.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantNoFollower(t, "after Shutdown")
}

// TestStoreClosedUnderProvider closes the Store while the provider
// follows it: the provider sends PROVIDER_ERROR, the SDK reports ERROR,
// its goroutine ends without a Shutdown, evaluations return the default
// with GENERAL, and Init again fails with an error matching ErrClosed.
func TestStoreClosedUnderProvider(t *testing.T) {
	s := mustOpen(t, opstate.Options{})
	mustSet(t, s, "t", "true")
	p := ofprovider.New(s, ns)
	c := setProvider(t, p)
	failed := record(c, openfeature.ProviderError)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	failed.wait(t, "PROVIDER_ERROR after the Store closed", nil)
	if got := c.State(); got != openfeature.ErrorState {
		t.Errorf("State() = %s; want ERROR", got)
	}
	wantNoFollower(t, "after the Store closed")
	d, err := c.BooleanValueDetails(context.Background(), "t", false, openfeature.EvaluationContext{})
	if err == nil || d.Value || d.ErrorCode != openfeature.GeneralCode {
		t.Errorf("BooleanValueDetails on a closed Store = %v, %s, %v; want false, GENERAL", d.Value, d.ErrorCode, err)
	}
	if err := p.Init(openfeature.EvaluationContext{}); !errors.Is(err, opstate.ErrClosed) {
		t.Errorf("Init on a closed Store = %v; want ErrClosed", err)
	}
	p.Shutdown()
	wantNoFollower(t, "after Shutdown")
}

// TestInitShutdownRace calls Init and Shutdown from many goroutines at
// once, while the Store is written: under -race, no data race; at the
// end, after a last Shutdown, nothing runs.
func TestInitShutdownRace(t *testing.T) {
	s := mustOpen(t, opstate.Options{})
	p := ofprovider.New(s, ns)
	// Read the events, as the SDK would.
	stop := make(chan struct{})
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for {
			select {
			case <-p.EventChannel():
			case <-stop:
				return
			}
		}
	}()
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 50 {
				if (g+i)%2 == 0 {
					if err := p.Init(openfeature.EvaluationContext{}); err != nil {
						t.Errorf("Init: %v", err)
						return
					}
				} else {
					p.Shutdown()
				}
				s.Set(ns, "t", "true")
			}
		}()
	}
	for range 4 {
		<-done
	}
	p.Shutdown()
	close(stop)
	<-drained
	wantNoFollower(t, "after the last Shutdown")
}
