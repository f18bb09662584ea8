package opstate_test

import (
	"bufio"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"modernc.org/sqlite"

	"github.com/d8da9184/opstate"
)

// fdatasyncOffered reports whether modernc.org/sqlite can sync with
// fdatasync on this system (see sqlite.Fdatasync).
func fdatasyncOffered() bool {
	switch runtime.GOOS {
	case "darwin", "ios", "windows":
		return false
	}
	return true
}

// Environment of the child process of TestFdatasyncSwitch.
const (
	fdatasyncStepsEnv = "OPSTATE_FDATASYNC_STEPS" // the steps, separated by ";"
	fdatasyncDirEnv   = "OPSTATE_FDATASYNC_DIR"   // where the child's stores go
)

// TestFdatasyncSwitch checks what Open and OpenDB do to modernc.org/sqlite's
// process-wide fdatasync switch, in a child process for each case, where
// the switch starts off as in any new process. The child runs the case's
// steps and prints sqlite.FdatasyncEnabled() after each one:
//   - "open D F" opens a Store on a new file with Durability D and
//     Fdatasync F, and keeps it open; "opendb D F" does so through
//     OpenDB over a modernc.org/sqlite *sql.DB;
//   - "app on", "app off" are the application's own sqlite.Fdatasync calls;
//   - "close" closes every Store the child opened.
//
// The cases pin down the promises of [opstate.Fdatasync]: the default,
// FdatasyncLeave, leaves it as it is (off, or the application's on), with
// either durability; FdatasyncOn turns it on whatever the durability, and
// nothing opstate does turns it off: not a second Store that disagrees,
// not Close.
func TestFdatasyncSwitch(t *testing.T) {
	if !fdatasyncOffered() {
		t.Skipf("modernc.org/sqlite does not sync with fdatasync on %s", runtime.GOOS)
	}
	for _, c := range []struct {
		name  string
		steps []string
		want  []bool // FdatasyncEnabled after each step
	}{
		{"full-default-leaves-off", []string{"open full leave"}, []bool{false}},
		{"normal-default-leaves-off", []string{"open normal leave"}, []bool{false}},
		{"full-on", []string{"open full on"}, []bool{true}},
		{"leave-keeps-application-on", []string{"app on", "open full leave", "open normal leave", "close"}, []bool{true, true, true, true}},
		{"on-with-normal", []string{"open normal on"}, []bool{true}},
		{"disagreeing-stores", []string{"open full leave", "open full on", "open full leave", "close"}, []bool{false, true, true, true}},
		{"application-off-stands-for-leave", []string{"open full on", "app off", "open full leave", "close"}, []bool{true, false, false, false}},
		{"opendb-modernc-on", []string{"opendb full on"}, []bool{true}},
		{"opendb-modernc-leave", []string{"opendb full leave"}, []bool{false}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := childCommand(t, "fdatasync",
				fdatasyncStepsEnv+"="+strings.Join(c.steps, ";"),
				fdatasyncDirEnv+"="+t.TempDir())
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, stderr.String())
			}
			var got []bool
			sc := bufio.NewScanner(strings.NewReader(string(out)))
			for sc.Scan() {
				got = append(got, sc.Text() == "true")
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("steps %q: FdatasyncEnabled after each = %v; want %v", c.steps, got, c.want)
			}
		})
	}
}

func init() { childRoles["fdatasync"] = fdatasyncChild }

// fdatasyncChild runs the steps of TestFdatasyncSwitch.
func fdatasyncChild() int {
	dir := os.Getenv(fdatasyncDirEnv)
	var stores []*opstate.Store
	var pools []*sql.DB
	defer func() {
		for _, p := range pools {
			p.Close()
		}
	}()
	durability := map[string]opstate.Durability{"normal": opstate.DurabilityNormal, "full": opstate.DurabilityFull}
	mode := map[string]opstate.Fdatasync{"on": opstate.FdatasyncOn, "leave": opstate.FdatasyncLeave}
	for i, step := range strings.Split(os.Getenv(fdatasyncStepsEnv), ";") {
		f := strings.Fields(step)
		path := filepath.Join(dir, fmt.Sprintf("s%d.db", i))
		var err error
		switch {
		case len(f) == 2 && f[0] == "app":
			_, err = sqlite.Fdatasync(f[1] == "on")
		case len(f) == 1 && f[0] == "close":
			for _, s := range stores {
				err = errors.Join(err, s.Close())
			}
			stores = nil
		case len(f) == 3 && f[0] == "open":
			var s *opstate.Store
			s, err = opstate.Open(path, opstate.Options{Durability: durability[f[1]], Fdatasync: mode[f[2]]})
			if err == nil {
				stores = append(stores, s)
				err = s.Set("ns", "k", "v")
			}
		case len(f) == 3 && f[0] == "opendb":
			var pool *sql.DB
			if pool, err = sql.Open("sqlite", path); err != nil {
				break
			}
			pools = append(pools, pool)
			var s *opstate.Store
			s, err = opstate.OpenDB(pool, opstate.Options{Durability: durability[f[1]], Fdatasync: mode[f[2]]})
			if err == nil {
				stores = append(stores, s)
				err = s.Set("ns", "k", "v")
			}
		default:
			err = fmt.Errorf("unknown step")
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "step %q: %v\n", step, err)
			return 1
		}
		fmt.Println(sqlite.FdatasyncEnabled())
	}
	for _, s := range stores {
		s.Close()
	}
	return 0
}

// otherDriver is a database/sql driver that is not modernc.org/sqlite's
// type, as mattn's or ncruces's is not, though its connections are
// modernc's: OpenDB must take it for another library.
type otherDriver struct{ sqlite.Driver }

func (d *otherDriver) Open(name string) (driver.Conn, error) { return d.Driver.Open(name) }

func init() { sql.Register("opstate-other-sqlite", &otherDriver{}) }

// TestFdatasyncRefused checks which Opens call modernc.org/sqlite's
// switch, and that where it is unavailable (macOS and Windows, played here
// by a switch that fails as it does there) FdatasyncOn is refused with
// ErrInvalidOption before anything is created, while the default opens
// with SQLite's sync left as it is. Over a pool of another driver, which
// the switch cannot reach, FdatasyncOn is refused; the default never
// calls it.
func TestFdatasyncRefused(t *testing.T) {
	for _, c := range []struct {
		name        string
		opendb      bool // through OpenDB over a pool of otherDriver
		durability  opstate.Durability
		fdatasync   opstate.Fdatasync
		unavailable bool // the switch fails with ErrFdatasyncUnavailable
		wantCalls   int
		wantErr     bool
	}{
		{"full-on", false, opstate.DurabilityFull, opstate.FdatasyncOn, false, 1, false},
		{"full-default", false, opstate.DurabilityFull, opstate.FdatasyncLeave, false, 0, false},
		{"full-on-unavailable", false, opstate.DurabilityFull, opstate.FdatasyncOn, true, 1, true},
		{"normal-on-unavailable", false, opstate.DurabilityNormal, opstate.FdatasyncOn, true, 1, true},
		{"full-default-unavailable", false, opstate.DurabilityFull, opstate.FdatasyncLeave, true, 0, false},
		{"other-driver-full-default", true, opstate.DurabilityFull, opstate.FdatasyncLeave, false, 0, false},
		{"other-driver-full-on", true, opstate.DurabilityFull, opstate.FdatasyncOn, false, 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			calls := 0
			t.Cleanup(opstate.SetFdatasyncSwitch(func(on bool) (bool, error) {
				calls++
				if !on {
					t.Errorf("opstate turned fdatasync off")
				}
				if c.unavailable {
					return false, sqlite.ErrFdatasyncUnavailable
				}
				return false, nil
			}))
			path := dbPath(t)
			opts := opstate.Options{Durability: c.durability, Fdatasync: c.fdatasync}
			var s *opstate.Store
			var err error
			if c.opendb {
				pool, perr := sql.Open("opstate-other-sqlite", path)
				if perr != nil {
					t.Fatal(perr)
				}
				t.Cleanup(func() { pool.Close() })
				s, err = opstate.OpenDB(pool, opts)
			} else {
				s, err = opstate.Open(path, opts)
			}
			if err == nil {
				s.Close()
			}
			if calls != c.wantCalls {
				t.Errorf("the switch was called %d times; want %d", calls, c.wantCalls)
			}
			if !c.wantErr {
				if err != nil {
					t.Fatalf("Open: %v; want nil", err)
				}
				return
			}
			if !errors.Is(err, opstate.ErrInvalidOption) {
				t.Fatalf("Open: %v; want ErrInvalidOption", err)
			}
			if c.unavailable && !errors.Is(err, sqlite.ErrFdatasyncUnavailable) {
				t.Errorf("Open: %v; want it to wrap sqlite.ErrFdatasyncUnavailable", err)
			}
			if _, serr := os.Stat(path); !c.opendb && !errors.Is(serr, os.ErrNotExist) {
				t.Errorf("a refused Open left %s: %v", path, serr)
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		path := dbPath(t)
		if _, err := opstate.Open(path, opstate.Options{Fdatasync: 7}); !errors.Is(err, opstate.ErrInvalidOption) {
			t.Fatalf("Open with Fdatasync(7): %v; want ErrInvalidOption", err)
		}
	})
}
