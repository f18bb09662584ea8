package release_test

import (
	"archive/zip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
)

// consumerAll uses every public module, and runs: it sets a flag in a
// Store and reads it through the OpenFeature provider.
const consumerAll = `package main

import (
	"context"
	"fmt"
	"os"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/ofprovider"
	"github.com/d8da9184/opstate/opstateprom"
	"github.com/d8da9184/opstate/pgstate"
)

// open is pgstate's, for a fleet that shares a PostgreSQL server.
var open = pgstate.Open

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	s, err := opstate.Open(":memory:", opstate.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Set("flags", "dark_mode", "true"); err != nil {
		return err
	}
	_ = opstateprom.NewCollector(s, "main")
	d := ofprovider.New(s, "flags").BooleanEvaluation(context.Background(), "dark_mode", false, nil)
	fmt.Printf("dark_mode=%v %v\n", d.Value, open != nil)
	return nil
}
`

// consumerOfprovider uses module ofprovider alone.
const consumerOfprovider = `package main

import (
	"context"
	"fmt"

	"github.com/d8da9184/opstate/ofprovider"
)

func main() {
	d := ofprovider.New(nil, "flags").BooleanEvaluation(context.Background(), "dark_mode", false, nil)
	fmt.Println(d.Value, d.Error())
}
`

// consumerOpstateprom uses module opstateprom alone.
const consumerOpstateprom = `package main

import (
	"fmt"

	"github.com/d8da9184/opstate/opstateprom"
)

var newCollector = opstateprom.NewCollector

func main() {
	fmt.Printf("%T\n", newCollector)
}
`

// pgx is the PostgreSQL driver's module path, less its major version.
const pgx = "github.com/jackc/pgx"

// TestConsumer builds, vets and lists the module graph of programs in
// modules of their own outside the repository, each requiring public
// modules of the repository at the version of release/version with no
// replace directive, as a user's program does. The repository's modules
// come from a module proxy made from the work tree (writeProxy), the
// others from the module cache's downloads and then the usual GOPROXY,
// into a module cache of the test's own (so that no copy of the
// repository's modules downloaded earlier is used). It checks that each
// builds and vets, that the program using all four runs, that each of the
// repository's modules in a graph comes from the proxy at that version,
// and that the graphs of the programs that use ofprovider alone and
// opstateprom alone hold neither pgx nor pgstate, which that of the
// program using all four does.
func TestConsumer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds programs against a module proxy (-short)")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command: %v", err)
	}
	root := repoRoot(t)
	version := releaseVersion(t, root)
	proxy := t.TempDir()
	writeProxy(t, root, proxy, version)

	t.Run("zips", func(t *testing.T) {
		for _, m := range modules(t, root) {
			esc, _ := module.EscapePath(m.path)
			name := filepath.Join(proxy, filepath.FromSlash(esc), "@v", version+".zip")
			mv := module.Version{Path: m.path, Version: version}
			if _, err := modzip.CheckZip(mv, name); err != nil {
				t.Errorf("zip of %s: %v", m.path, err)
			}
		}
		// The root's zip holds its go.mod and its own files, not the
		// other modules' nor anything outside module@version/.
		esc, _ := module.EscapePath(publicModules[0])
		z, err := zip.OpenReader(filepath.Join(proxy, filepath.FromSlash(esc), "@v", version+".zip"))
		if err != nil {
			t.Fatal(err)
		}
		defer z.Close()
		prefix := publicModules[0] + "@" + version + "/"
		have := map[string]bool{}
		for _, f := range z.File {
			if !strings.HasPrefix(f.Name, prefix) {
				t.Errorf("root zip holds %s, outside %s", f.Name, prefix)
			}
			have[strings.TrimPrefix(f.Name, prefix)] = true
		}
		for _, p := range []string{"go.mod", "opstate.go", "doc.go"} {
			if !have[p] {
				t.Errorf("root zip holds no %s", p)
			}
		}
		for p := range have {
			for _, m := range modules(t, root) {
				if m.dir != "." && strings.HasPrefix(p, m.dir+"/") {
					t.Errorf("root zip holds %s, of module %s", p, m.path)
				}
			}
		}
	})

	// The go command's settings for the programs: the usual ones, but
	// those below.
	parent := strings.Fields(mustRun(t, ".", nil, goCmd, "env", "GOPROXY", "GOMODCACHE"))
	if len(parent) != 2 {
		t.Fatalf("go env GOPROXY GOMODCACHE = %q", parent)
	}
	env := []string{
		"GOPROXY=file://" + filepath.ToSlash(proxy) + ",file://" + filepath.ToSlash(filepath.Join(parent[1], "cache", "download")) + "," + parent[0],
		"GOMODCACHE=" + t.TempDir(),
		// -mod=mod: the programs' go.mod names only what they import;
		// the go command adds the rest. -modcacherw: the test can
		// remove its module cache.
		"GOFLAGS=-mod=mod -modcacherw",
		// The proxy's zips are made here, so no checksum database knows
		// them; the others were checked when they entered the cache.
		"GOSUMDB=off",
		// The repository's modules come from the proxy, never from git.
		"GOPRIVATE=", "GONOPROXY=", "GONOSUMDB=", "GOINSECURE=",
		"GOWORK=off", "GOTOOLCHAIN=local", "GO111MODULE=on", "GOENV=off",
	}

	cases := []struct {
		name     string
		requires []string // modules of the repository
		src      string
		run      string // what the program prints, if it is to be run
		pgx      bool   // pgx and pgstate are in the graph
	}{
		{"all four", publicModules, consumerAll, "dark_mode=true true\n", true},
		{"ofprovider alone", []string{"github.com/d8da9184/opstate/ofprovider"}, consumerOfprovider, "", false},
		{"opstateprom alone", []string{"github.com/d8da9184/opstate/opstateprom"}, consumerOpstateprom, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			gomod := "module example.com/consumer\n\ngo 1.26.0\n\nrequire (\n"
			for _, p := range c.requires {
				gomod += "\t" + p + " " + version + "\n"
			}
			gomod += ")\n"
			if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(c.src), 0o644); err != nil {
				t.Fatal(err)
			}
			bin := filepath.Join(t.TempDir(), "consumer")
			// -trimpath: the build cache's entries for the third-party
			// packages do not depend on where the module cache is, so
			// that later runs reuse them.
			mustRun(t, dir, env, goCmd, "build", "-trimpath", "-o", bin, ".")
			mustRun(t, dir, env, goCmd, "vet", "-trimpath", "./...")
			if c.run != "" {
				if out := mustRun(t, dir, nil, bin); out != c.run {
					t.Errorf("consumer printed %q; want %q", out, c.run)
				}
			}

			graph := mustRun(t, dir, env, goCmd, "list", "-m", "-f", "{{.Path}} {{.Version}} {{with .Replace}}replaced by {{.Path}}{{end}}", "all")
			var hasPgx, hasPgstate bool
			for _, l := range strings.Split(strings.TrimSpace(graph), "\n") {
				f := strings.Fields(l)
				if len(f) < 2 { // the consumer's own module
					continue
				}
				if strings.HasPrefix(f[0], "github.com/d8da9184/") && (f[1] != version || len(f) > 2) {
					t.Errorf("graph holds %q; want %s %s", l, f[0], version)
				}
				hasPgx = hasPgx || f[0] == pgx || strings.HasPrefix(f[0], pgx+"/")
				hasPgstate = hasPgstate || f[0] == "github.com/d8da9184/opstate/pgstate"
			}
			if hasPgx != c.pgx || hasPgstate != c.pgx {
				t.Errorf("graph holds pgx: %v, pgstate: %v; want %v, %v. go list -m all:\n%s", hasPgx, hasPgstate, c.pgx, c.pgx, graph)
			}
			// Every module of the repository the graph holds is in the
			// test's module cache, from the proxy.
			for _, p := range c.requires {
				d := strings.TrimSpace(mustRun(t, dir, env, goCmd, "list", "-m", "-f", "{{.Dir}}", p))
				if !strings.HasPrefix(d, envValue(env, "GOMODCACHE")+string(filepath.Separator)) {
					t.Errorf("module %s is in %s; want the test's module cache", p, d)
				}
			}
		})
	}
}

// envValue returns the value of key in env, KEY=value settings.
func envValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}
