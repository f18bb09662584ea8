package ofprovider_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/ofprovider"
	"github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/memprovider"
)

// benchFlags is the flag set of the benchmarks: 16 toggles, every other
// one on, served by each provider compared.
func benchFlags(b *testing.B) (keys []string, s *opstate.Store, mem *memprovider.InMemoryProvider) {
	s = mustOpen(b, opstate.Options{})
	flags := map[string]memprovider.InMemoryFlag{}
	for i := range 16 {
		k := "toggle_" + strconv.Itoa(i)
		on := i%2 == 0
		keys = append(keys, k)
		mustSet(b, s, k, strconv.FormatBool(on))
		variant := "off"
		if on {
			variant = "on"
		}
		flags[k] = memprovider.InMemoryFlag{
			Key:            k,
			State:          memprovider.Enabled,
			DefaultVariant: variant,
			Variants:       map[string]any{"on": true, "off": false},
		}
	}
	return keys, s, memprovider.NewInMemoryProvider(flags)
}

// wantToggles fails the benchmark unless eval returns each toggle's value.
func wantToggles(b *testing.B, keys []string, eval func(string) (bool, error)) {
	b.Helper()
	for i, k := range keys {
		if v, err := eval(k); err != nil || v != (i%2 == 0) {
			b.Fatalf("%s = %v, %v; want %v", k, v, err, i%2 == 0)
		}
	}
}

// BenchmarkBooleanEvaluation measures the provider's own
// BooleanEvaluation of a cached flag, against what it costs at the
// least, Store.Get plus strconv.ParseBool (the target: within 2×, and no
// allocation), and against the SDK's in-memory provider on the same
// flags.
func BenchmarkBooleanEvaluation(b *testing.B) {
	keys, s, mem := benchFlags(b)
	p := ofprovider.New(s, ns)
	ctx := context.Background()
	for _, bm := range []struct {
		name string
		eval func(string) (bool, error)
	}{
		{"provider=opstate", func(k string) (bool, error) {
			d := p.BooleanEvaluation(ctx, k, false, nil)
			return d.Value, d.Error()
		}},
		{"provider=store-get-parsebool", func(k string) (bool, error) {
			v, err := s.Get(ns, k)
			if err != nil {
				return false, err
			}
			return strconv.ParseBool(v)
		}},
		{"provider=memprovider", func(k string) (bool, error) {
			d := mem.BooleanEvaluation(ctx, k, false, nil)
			return d.Value, d.Error()
		}},
	} {
		b.Run(bm.name, func(b *testing.B) {
			wantToggles(b, keys, bm.eval)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				bm.eval(keys[i%len(keys)])
			}
		})
	}
}

// BenchmarkClientBooleanValue measures the whole client.BooleanValue
// call through the SDK (hooks, context merging, state check), over this
// provider and over the SDK's in-memory provider, on the same flags.
func BenchmarkClientBooleanValue(b *testing.B) {
	keys, s, mem := benchFlags(b)
	ctx := context.Background()
	for _, bm := range []struct {
		name string
		p    openfeature.FeatureProvider
	}{
		{"provider=opstate", ofprovider.New(s, ns)},
		{"provider=memprovider", mem},
	} {
		b.Run(bm.name, func(b *testing.B) {
			c := setProvider(b, bm.p)
			eval := func(k string) (bool, error) {
				return c.BooleanValue(ctx, k, false, openfeature.EvaluationContext{})
			}
			wantToggles(b, keys, eval)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				eval(keys[i%len(keys)])
			}
		})
	}
}
