package ofprovider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/d8da9184/opstate"
	"github.com/open-feature/go-sdk/openfeature"
)

// Name is the provider's name, in its [Provider.Metadata] and in the
// ProviderName of its events.
const Name = "opstate"

// ErrNoStore is returned by [Provider.Init], and reported as a GENERAL
// resolution error by every evaluation, for a Provider made with a nil
// Store.
var ErrNoStore = errors.New("ofprovider: nil Store")

// Provider is an OpenFeature provider whose flags are the keys of one
// namespace of an [opstate.Store]. It implements the SDK's
// [openfeature.FeatureProvider], [openfeature.StateHandler] and
// [openfeature.EventHandler]. Its methods are safe for concurrent use.
type Provider struct {
	store *opstate.Store
	ns    string
	// meta is the FlagMetadata of every result, built once so that an
	// evaluation allocates nothing: the SDK copies it into the details it
	// hands out (ProviderResolutionDetail.ResolutionDetail) and never
	// writes it.
	meta openfeature.FlagMetadata
	// events is the EventChannel, unbuffered and never closed: the SDK
	// stops reading it by a signal of its own, and Init after Shutdown
	// sends on it again. A send waits for the SDK; meanwhile the Store
	// coalesces the changes waiting per key (see opstate.Store.Watch).
	events chan openfeature.Event

	mu sync.Mutex // guards stop and done; Init and Shutdown hold it throughout
	// stop ends the running watch (nil when none runs), whose goroutine
	// closes done as its last act.
	stop context.CancelFunc
	done chan struct{}
}

var (
	_ openfeature.FeatureProvider = (*Provider)(nil)
	_ openfeature.StateHandler    = (*Provider)(nil)
	_ openfeature.EventHandler    = (*Provider)(nil)
)

// New returns a Provider serving the keys of namespace in store as flags.
// It starts nothing: the SDK's Init (when the provider is set) starts
// following the namespace's changes, and Shutdown stops it. Evaluations
// work without Init. store is not closed by the Provider.
func New(store *opstate.Store, namespace string) *Provider {
	return &Provider{
		store:  store,
		ns:     namespace,
		meta:   openfeature.FlagMetadata{"namespace": namespace},
		events: make(chan openfeature.Event),
	}
}

// Metadata returns the provider's name, [Name].
func (p *Provider) Metadata() openfeature.Metadata {
	return openfeature.Metadata{Name: Name}
}

// Hooks returns no hooks: the provider has none.
func (p *Provider) Hooks() []openfeature.Hook { return nil }

// BooleanEvaluation returns the flag's value read as strconv.ParseBool
// reads it: "true", "false", "1", "0", "t", "f", "T", "F", "TRUE",
// "FALSE", "True" or "False". Other values are TYPE_MISMATCH.
func (p *Provider) BooleanEvaluation(_ context.Context, flag string, defaultValue bool, _ openfeature.FlattenedContext) openfeature.BoolResolutionDetail {
	return evaluate(p, flag, defaultValue, "a bool", strconv.ParseBool, typeMismatch)
}

// StringEvaluation returns the flag's value as it is stored, byte for
// byte; every value is a string, the empty one included.
func (p *Provider) StringEvaluation(_ context.Context, flag string, defaultValue string, _ openfeature.FlattenedContext) openfeature.StringResolutionDetail {
	return evaluate(p, flag, defaultValue, "a string", parseString, typeMismatch)
}

// FloatEvaluation returns the flag's value read by
// strconv.ParseFloat(value, 64). A value it refuses, or one out of
// float64's range, is TYPE_MISMATCH.
func (p *Provider) FloatEvaluation(_ context.Context, flag string, defaultValue float64, _ openfeature.FlattenedContext) openfeature.FloatResolutionDetail {
	return evaluate(p, flag, defaultValue, "a float", parseFloat, typeMismatch)
}

// IntEvaluation returns the flag's value read by strconv.ParseInt(value,
// 10, 64): decimal digits with an optional sign. Other values, and those
// out of int64's range, are TYPE_MISMATCH.
func (p *Provider) IntEvaluation(_ context.Context, flag string, defaultValue int64, _ openfeature.FlattenedContext) openfeature.IntResolutionDetail {
	return evaluate(p, flag, defaultValue, "an int", parseInt, typeMismatch)
}

// ObjectEvaluation returns the flag's value decoded by encoding/json into
// an any: a JSON object is a map[string]any, an array a []any, a number a
// float64, null a nil. A value that is not JSON is PARSE_ERROR.
func (p *Provider) ObjectEvaluation(_ context.Context, flag string, defaultValue any, _ openfeature.FlattenedContext) openfeature.InterfaceResolutionDetail {
	return evaluate(p, flag, defaultValue, "JSON", parseJSON, parseError)
}

// evaluate reads flag and parses it as a T: its value with reason STATIC,
// or defaultValue with reason ERROR and the resolution error that says
// why (fail makes the one for a value that does not parse). The found
// path builds nothing but the result; failure does the rest.
func evaluate[T any](p *Provider, flag string, defaultValue T, kind string,
	parse func(string) (T, error), fail func(string, error) openfeature.ResolutionError,
) openfeature.GenericResolutionDetail[T] {
	v, ok, err := p.lookup(flag)
	if ok {
		x, perr := parse(v)
		if perr == nil {
			return openfeature.GenericResolutionDetail[T]{
				Value:                    x,
				ProviderResolutionDetail: openfeature.ProviderResolutionDetail{Reason: openfeature.StaticReason, FlagMetadata: p.meta},
			}
		}
		msg := fmt.Sprintf("flag %q of namespace %q is not %s: %v", flag, p.ns, kind, perr)
		return openfeature.GenericResolutionDetail[T]{Value: defaultValue, ProviderResolutionDetail: p.failed(fail(msg, perr))}
	}
	return openfeature.GenericResolutionDetail[T]{Value: defaultValue, ProviderResolutionDetail: p.failed(p.missing(flag, err))}
}

// lookup returns the value of flag and whether it is found. An empty
// flag is not (no key is empty).
func (p *Provider) lookup(flag string) (string, bool, error) {
	switch {
	case flag == "":
		return "", false, nil
	case p.store == nil:
		return "", false, ErrNoStore
	}
	return p.store.Lookup(p.ns, flag)
}

// missing returns the resolution error of a flag that lookup did not find:
// GENERAL for the Store's error err, else FLAG_NOT_FOUND (the key is
// missing, expired or empty).
func (p *Provider) missing(flag string, err error) openfeature.ResolutionError {
	switch {
	case err != nil:
		return openfeature.NewGeneralResolutionError(fmt.Sprintf("flag %q of namespace %q: %v", flag, p.ns, err), err)
	case flag == "":
		return openfeature.NewFlagNotFoundResolutionError(fmt.Sprintf("empty flag key (namespace %q)", p.ns))
	}
	return openfeature.NewFlagNotFoundResolutionError(fmt.Sprintf("flag %q not found in namespace %q", flag, p.ns))
}

// failed returns the detail of an evaluation that returns the default
// because of e.
func (p *Provider) failed(e openfeature.ResolutionError) openfeature.ProviderResolutionDetail {
	return openfeature.ProviderResolutionDetail{ResolutionError: e, Reason: openfeature.ErrorReason, FlagMetadata: p.meta}
}

func parseString(s string) (string, error) { return s, nil }

func parseInt(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }

func parseFloat(s string) (float64, error) { return strconv.ParseFloat(s, 64) }

func parseJSON(s string) (any, error) {
	var v any
	err := json.Unmarshal([]byte(s), &v)
	return v, err
}

func typeMismatch(msg string, _ error) openfeature.ResolutionError {
	return openfeature.NewTypeMismatchResolutionError(msg)
}

func parseError(msg string, err error) openfeature.ResolutionError {
	return openfeature.NewParseErrorResolutionError(msg, err)
}
