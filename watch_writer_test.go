package opstate_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/d8da9184/opstate"
)

// The child role "watch-writer" writes to the namespace watchChildNS of the
// file watchChildDB: the steps of watchChildSteps ("set k v;delete k"),
// then, if watchChildRandom is "seed,n", n random writes (randomWrites).
const (
	watchChildDB     = "OPSTATE_WATCH_DB"
	watchChildNS     = "OPSTATE_WATCH_NS"
	watchChildSteps  = "OPSTATE_WATCH_STEPS"
	watchChildRandom = "OPSTATE_WATCH_RANDOM"
)

func init() { childRoles["watch-writer"] = watchWriter }

func watchWriter() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s, err := opstate.Open(os.Getenv(watchChildDB), opstate.Options{SweepInterval: -1})
	if err != nil {
		return fail(err)
	}
	ns := os.Getenv(watchChildNS)
	if steps := os.Getenv(watchChildSteps); steps != "" {
		for _, step := range strings.Split(steps, ";") {
			f := strings.Fields(step)
			switch {
			case len(f) == 3 && f[0] == "set":
				err = s.Set(ns, f[1], f[2])
			case len(f) == 2 && f[0] == "delete":
				err = s.Delete(ns, f[1])
			default:
				err = fmt.Errorf("bad step %q", step)
			}
			if err != nil {
				s.Close()
				return fail(err)
			}
		}
	}
	if r := os.Getenv(watchChildRandom); r != "" {
		var seed uint64
		var n int
		if _, err := fmt.Sscanf(r, "%d,%d", &seed, &n); err != nil {
			s.Close()
			return fail(fmt.Errorf("%s=%q: %v", watchChildRandom, r, err))
		}
		if err := randomWrites(s, ns, rand.New(rand.NewPCG(seed, 0)), n, 300, "child"); err != nil {
			s.Close()
			return fail(err)
		}
	}
	if err := s.Close(); err != nil {
		return fail(err)
	}
	return 0
}

// randomWrites makes n writes to keys r0..r(keys-1) of ns, each value
// written once ("who-i"): Set, SetWithTTL (an hour: nothing expires
// during a test), Delete, SetIfAbsent, CompareAndSwap and CompareAndDelete
// of the value just read, and, rarely, DeleteNamespace.
func randomWrites(s *opstate.Store, ns string, rng *rand.Rand, n, keys int, who string) error {
	for i := range n {
		k := fmt.Sprint("r", rng.IntN(keys))
		v := fmt.Sprintf("%s-%d", who, i)
		var err error
		switch p := rng.IntN(1000); {
		case p < 400:
			err = s.Set(ns, k, v)
		case p < 550:
			err = s.SetWithTTL(ns, k, v, time.Hour)
		case p < 700:
			err = s.Delete(ns, k)
		case p < 800:
			_, err = s.SetIfAbsent(ns, k, v)
		case p < 900:
			var old string
			if old, err = s.Get(ns, k); err == nil {
				_, err = s.CompareAndSwap(ns, k, old, v)
			}
		case p < 998:
			var old string
			if old, err = s.Get(ns, k); err == nil {
				_, err = s.CompareAndDelete(ns, k, old)
			}
		default:
			err = s.DeleteNamespace(ns)
		}
		if err != nil {
			return fmt.Errorf("%s: write %d of %s/%s: %w", who, i, ns, k, err)
		}
	}
	return nil
}
