package ofprovider_test

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/ofprovider"
	"github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/isolated"
)

const ns = "flags"

// mustOpen opens an in-memory Store, closed at cleanup.
func mustOpen(t testing.TB, opts opstate.Options) *opstate.Store {
	t.Helper()
	return mustOpenPath(t, ":memory:", opts)
}

// mustOpenPath opens the Store of path, closed at cleanup.
func mustOpenPath(t testing.TB, path string, opts opstate.Options) *opstate.Store {
	t.Helper()
	s, err := opstate.Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// dbPath returns the path of a new database file in a directory of the
// test's own.
func dbPath(t testing.TB) string { return filepath.Join(t.TempDir(), "state.db") }

func mustSet(t testing.TB, s *opstate.Store, key, value string) {
	t.Helper()
	if err := s.Set(ns, key, value); err != nil {
		t.Fatalf("Set(%q, %q, %q): %v", ns, key, value, err)
	}
}

// newAPI returns an OpenFeature API of the test's own, shut down at
// cleanup (which shuts its providers down).
func newAPI(t testing.TB) *openfeature.EvaluationAPI {
	t.Helper()
	api := isolated.NewAPI()
	t.Cleanup(func() { api.Shutdown(context.Background()) })
	return api
}

// setProvider sets p as the default provider of a new API, waits for its
// Init, and returns a client of it.
func setProvider(t testing.TB, p openfeature.FeatureProvider) *openfeature.Client {
	t.Helper()
	api := newAPI(t)
	if err := api.SetProviderAndWait(context.Background(), p); err != nil {
		t.Fatalf("SetProviderAndWait: %v", err)
	}
	return api.NewClient()
}

// fakeClock is an Options.Clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// result is an evaluation's outcome, of any kind.
type result struct {
	value  any
	detail openfeature.ResolutionDetail
	err    error
}

// kind evaluates flags of one kind through a client and through a
// provider directly (its ProviderResolutionDetail turned into the
// client's ResolutionDetail), with the default given as an any.
type kind struct {
	client   func(c *openfeature.Client, flag string, def any) result
	provider func(p openfeature.FeatureProvider, flag string, def any) result
}

// kindOf makes the kind of a client's ...ValueDetails method and the
// provider's matching ...Evaluation method.
func kindOf[T any](
	client func(*openfeature.Client, context.Context, string, T, openfeature.EvaluationContext, ...openfeature.Option) (openfeature.GenericEvaluationDetails[T], error),
	provider func(openfeature.FeatureProvider, context.Context, string, T, openfeature.FlattenedContext) openfeature.GenericResolutionDetail[T],
) kind {
	return kind{
		client: func(c *openfeature.Client, flag string, def any) result {
			v, _ := def.(T) // an Object's nil default is the zero any
			d, err := client(c, context.Background(), flag, v, openfeature.EvaluationContext{})
			return result{d.Value, d.ResolutionDetail, err}
		},
		provider: func(p openfeature.FeatureProvider, flag string, def any) result {
			v, _ := def.(T)
			d := provider(p, context.Background(), flag, v, nil)
			return result{d.Value, d.ResolutionDetail(), d.Error()}
		},
	}
}

var kinds = map[string]kind{
	"Boolean": kindOf((*openfeature.Client).BooleanValueDetails, openfeature.FeatureProvider.BooleanEvaluation),
	"String":  kindOf((*openfeature.Client).StringValueDetails, openfeature.FeatureProvider.StringEvaluation),
	"Int":     kindOf((*openfeature.Client).IntValueDetails, openfeature.FeatureProvider.IntEvaluation),
	"Float":   kindOf((*openfeature.Client).FloatValueDetails, openfeature.FeatureProvider.FloatEvaluation),
	"Object":  kindOf((*openfeature.Client).ObjectValueDetails, openfeature.FeatureProvider.ObjectEvaluation),
}

// evalCase is one evaluation and what it must return: want with reason
// STATIC and no error, or, with code set, the default with reason ERROR
// and that error code.
type evalCase struct {
	kind, flag string
	def, want  any
	code       openfeature.ErrorCode
}

// TestEvaluations evaluates every kind over values that parse, values
// that do not, and keys that are missing, expired or empty, through the
// SDK's client and through the provider itself: the value or the
// default, the reason, the error code, an error exactly when there is a
// code, and the namespace in the FlagMetadata of every result.
func TestEvaluations(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 3, 7, 10, 0, 0, 0, time.UTC)}
	s := mustOpen(t, opstate.Options{Clock: clk.Now})
	for k, v := range map[string]string{
		"t": "true", "f": "false", "one": "1", "zero": "0", "T": "T", "False": "False",
		"on": "on", "spaced": " true", "empty": "",
		"str": "hello, world", "bytes": "a\x00\xff",
		"int": "42", "neg": "-7", "plus": "+3", "int64max": "9223372036854775807",
		"overflow": "9223372036854775808", "hex": "0x10", "underscore": "1_000", "decimal": "1.5",
		"float": "2.5", "exp": "1e3", "nan": "NaN", "inf": "-Inf", "float_overflow": "1e400",
		"obj": `{"a":[1,"x",true,null],"b":{"c":2.5}}`, "arr": `[1,2]`, "jstr": `"s"`, "null": "null",
		"bad_json": `{"a":`, "trailing": `{} {}`,
	} {
		mustSet(t, s, k, v)
	}
	if err := s.SetWithTTL(ns, "expired", "true", time.Second); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)

	const (
		notFound = openfeature.FlagNotFoundCode
		mismatch = openfeature.TypeMismatchCode
		parse    = openfeature.ParseErrorCode
	)
	cases := []evalCase{
		{"Boolean", "t", false, true, ""},
		{"Boolean", "f", true, false, ""},
		{"Boolean", "one", false, true, ""},
		{"Boolean", "zero", true, false, ""},
		{"Boolean", "T", false, true, ""},
		{"Boolean", "False", true, false, ""},
		{"Boolean", "on", true, true, mismatch},
		{"Boolean", "spaced", false, false, mismatch},
		{"Boolean", "empty", true, true, mismatch},
		{"Boolean", "int", false, false, mismatch},
		{"Boolean", "missing", true, true, notFound},
		{"Boolean", "expired", false, false, notFound},
		{"Boolean", "", true, true, notFound},

		{"String", "str", "d", "hello, world", ""},
		{"String", "empty", "d", "", ""},
		{"String", "bytes", "d", "a\x00\xff", ""},
		{"String", "int", "d", "42", ""},
		{"String", "missing", "d", "d", notFound},
		{"String", "expired", "d", "d", notFound},

		{"Int", "int", int64(0), int64(42), ""},
		{"Int", "neg", int64(0), int64(-7), ""},
		{"Int", "plus", int64(0), int64(3), ""},
		{"Int", "int64max", int64(0), int64(math.MaxInt64), ""},
		{"Int", "overflow", int64(5), int64(5), mismatch},
		{"Int", "hex", int64(5), int64(5), mismatch},
		{"Int", "underscore", int64(5), int64(5), mismatch},
		{"Int", "decimal", int64(5), int64(5), mismatch},
		{"Int", "str", int64(5), int64(5), mismatch},
		{"Int", "empty", int64(5), int64(5), mismatch},
		{"Int", "missing", int64(5), int64(5), notFound},

		{"Float", "float", 0.0, 2.5, ""},
		{"Float", "exp", 0.0, 1000.0, ""},
		{"Float", "int", 0.0, 42.0, ""},
		{"Float", "inf", 0.0, math.Inf(-1), ""},
		{"Float", "float_overflow", 1.5, 1.5, mismatch},
		{"Float", "str", 1.5, 1.5, mismatch},
		{"Float", "empty", 1.5, 1.5, mismatch},
		{"Float", "missing", 1.5, 1.5, notFound},

		{"Object", "obj", nil, map[string]any{"a": []any{1.0, "x", true, nil}, "b": map[string]any{"c": 2.5}}, ""},
		{"Object", "arr", nil, []any{1.0, 2.0}, ""},
		{"Object", "jstr", nil, "s", ""},
		{"Object", "int", nil, 42.0, ""},
		{"Object", "null", "d", nil, ""},
		{"Object", "bad_json", "d", "d", parse},
		{"Object", "trailing", "d", "d", parse},
		{"Object", "str", "d", "d", parse},
		{"Object", "empty", "d", "d", parse},
		{"Object", "missing", "d", "d", notFound},
		{"Object", "expired", "d", "d", notFound},
	}
	p := ofprovider.New(s, ns)
	c := setProvider(t, p)
	for _, tc := range cases {
		t.Run(tc.kind+"/"+tc.flag, func(t *testing.T) {
			k := kinds[tc.kind]
			checkResult(t, "client", tc, k.client(c, tc.flag, tc.def))
			checkResult(t, "provider", tc, k.provider(p, tc.flag, tc.def))
		})
	}
	t.Run("Float/nan", func(t *testing.T) {
		got := kinds["Float"].client(c, "nan", 0.0)
		if f, ok := got.value.(float64); !ok || !math.IsNaN(f) || got.err != nil || got.detail.Reason != openfeature.StaticReason {
			t.Errorf("FloatValueDetails(nan) = %v, %v, %v; want NaN, STATIC, nil", got.value, got.detail.Reason, got.err)
		}
	})
}

// TestStoreErrors checks the evaluations of a provider whose Store fails
// (closed under it, or never there) or whose namespace is empty: the
// default with GENERAL, through the client as through the provider, for
// every kind.
func TestStoreErrors(t *testing.T) {
	closed := mustOpen(t, opstate.Options{})
	mustSet(t, closed, "t", "true")
	pClosed := ofprovider.New(closed, ns)
	cClosed := setProvider(t, pClosed)
	closed.Close()

	open := mustOpen(t, opstate.Options{})
	mustSet(t, open, "t", "true")
	for _, tt := range []struct {
		name    string
		p       *ofprovider.Provider
		c       *openfeature.Client
		initErr error // what setting it returns
	}{
		{"closed Store", pClosed, cClosed, nil},
		{"nil Store", ofprovider.New(nil, ns), nil, ofprovider.ErrNoStore},
		{"empty namespace", ofprovider.New(open, ""), nil, opstate.ErrEmptyName},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c
			if c == nil {
				api := newAPI(t)
				err := api.SetProviderAndWait(context.Background(), tt.p)
				if !errors.Is(err, tt.initErr) {
					t.Errorf("SetProviderAndWait = %v; want %v", err, tt.initErr)
				}
				c = api.NewClient()
			}
			for _, tc := range []evalCase{
				{"Boolean", "t", true, true, openfeature.GeneralCode},
				{"String", "t", "d", "d", openfeature.GeneralCode},
				{"Int", "t", int64(5), int64(5), openfeature.GeneralCode},
				{"Float", "t", 1.5, 1.5, openfeature.GeneralCode},
				{"Object", "t", "d", "d", openfeature.GeneralCode},
			} {
				checkResult(t, tc.kind+" client", tc, kinds[tc.kind].client(c, tc.flag, tc.def))
				checkResult(t, tc.kind+" provider", tc, kinds[tc.kind].provider(tt.p, tc.flag, tc.def))
			}
		})
	}
}

// checkResult compares an evaluation's outcome with tc's.
func checkResult(t *testing.T, via string, tc evalCase, got result) {
	t.Helper()
	if !reflect.DeepEqual(got.value, tc.want) {
		t.Errorf("%s: %s(%q) = %#v; want %#v", via, tc.kind, tc.flag, got.value, tc.want)
	}
	if got.detail.ErrorCode != tc.code {
		t.Errorf("%s: %s(%q) error code %q (%s); want %q", via, tc.kind, tc.flag, got.detail.ErrorCode, got.detail.ErrorMessage, tc.code)
	}
	wantReason := openfeature.StaticReason
	if tc.code != "" {
		wantReason = openfeature.ErrorReason
		if got.err == nil || got.detail.ErrorMessage == "" {
			t.Errorf("%s: %s(%q) error %v, message %q; want an error and a message", via, tc.kind, tc.flag, got.err, got.detail.ErrorMessage)
		}
	} else if got.err != nil {
		t.Errorf("%s: %s(%q) error %v; want nil", via, tc.kind, tc.flag, got.err)
	}
	if got.detail.Reason != wantReason {
		t.Errorf("%s: %s(%q) reason %q; want %q", via, tc.kind, tc.flag, got.detail.Reason, wantReason)
	}
	if want := (openfeature.FlagMetadata{"namespace": ns}); tc.code != openfeature.GeneralCode && !reflect.DeepEqual(got.detail.FlagMetadata, want) {
		t.Errorf("%s: %s(%q) FlagMetadata %v; want %v", via, tc.kind, tc.flag, got.detail.FlagMetadata, want)
	}
}

// TestFlagMetadataNotShared checks that changing the FlagMetadata of one
// result, as a hook or caller might, changes no other result's: the
// provider hands the SDK one map, which the SDK copies.
func TestFlagMetadataNotShared(t *testing.T) {
	s := mustOpen(t, opstate.Options{})
	mustSet(t, s, "t", "true")
	c := setProvider(t, ofprovider.New(s, ns))
	d, err := c.BooleanValueDetails(context.Background(), "t", false, openfeature.EvaluationContext{})
	if err != nil {
		t.Fatal(err)
	}
	d.FlagMetadata["namespace"] = "changed"
	d.FlagMetadata["extra"] = 1
	d, err = c.BooleanValueDetails(context.Background(), "t", false, openfeature.EvaluationContext{})
	if want := (openfeature.FlagMetadata{"namespace": ns}); err != nil || !reflect.DeepEqual(d.FlagMetadata, want) {
		t.Errorf("FlagMetadata after a caller changed an earlier one = %v, %v; want %v", d.FlagMetadata, err, want)
	}
}

// TestEvaluationAllocs checks that evaluating a found flag of a scalar
// kind allocates nothing (the Store's cached Lookup allocates nothing,
// and the provider builds no map or error for it).
func TestEvaluationAllocs(t *testing.T) {
	s := mustOpen(t, opstate.Options{})
	for k, v := range map[string]string{"bool": "true", "str": "x", "int": "42", "float": "2.5"} {
		mustSet(t, s, k, v)
	}
	p := ofprovider.New(s, ns)
	ctx := context.Background()
	for name, f := range map[string]func(){
		"Boolean": func() { p.BooleanEvaluation(ctx, "bool", false, nil) },
		"String":  func() { p.StringEvaluation(ctx, "str", "", nil) },
		"Int":     func() { p.IntEvaluation(ctx, "int", 0, nil) },
		"Float":   func() { p.FloatEvaluation(ctx, "float", 0, nil) },
	} {
		f() // caches the key
		if got := testing.AllocsPerRun(1000, f); got != 0 {
			t.Errorf("%sEvaluation of a found flag allocates %v times per call; want 0", name, got)
		}
	}
}
