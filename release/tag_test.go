package release_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tagName is the tag of the module in dir for version.
func tagName(dir, version string) string {
	if dir == "." {
		return version
	}
	return dir + "/" + version
}

// tags returns the tags of the repository in dir, sorted.
func tags(t *testing.T, dir string) []string {
	t.Helper()
	return strings.Fields(git(t, dir, "tag", "--list"))
}

// setRequire rewrites the require of module path in the go.mod of
// module dir, in the repository in root, to version, and returns the
// go.mod's name and the number of the line it changed.
func setRequire(t *testing.T, root, dir, path, version string) (file string, line int) {
	t.Helper()
	file = dir + "/go.mod"
	name := filepath.Join(root, filepath.FromSlash(file))
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == "require" {
			f = f[1:]
		}
		if len(f) >= 2 && f[0] == path {
			lines[i] = strings.Replace(l, f[1], version, 1)
			line = i + 1
		}
	}
	if line == 0 {
		t.Fatalf("%s requires no %s", file, path)
	}
	if err := os.WriteFile(name, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return file, line
}

// TestTag runs release/tag in copies of the repository: with every
// require of the repository's modules at the version of release/version
// it makes one annotated tag per module at HEAD (vX.Y.Z for the root,
// DIR/vX.Y.Z for the others) and nothing else; -n makes none and says
// which it would; and it refuses, tagging nothing, when a require names
// another version (saying which go.mod lines), when the version is not
// release/version's, when the tree is dirty or not on main, or when a
// tag exists.
func TestTag(t *testing.T) {
	template := copyRepo(t)
	version := releaseVersion(t, template)
	mods := modules(t, template)
	var all []string
	for _, m := range mods {
		all = append(all, tagName(m.dir, version))
	}
	slices.Sort(all)
	for _, p := range publicModules {
		if !slices.ContainsFunc(mods, func(m repoModule) bool { return m.path == p }) {
			t.Fatalf("no module %s in the repository", p)
		}
	}

	// Each case runs in a clone of the template; prepare changes it and
	// returns what the script's standard error must say.
	type result struct {
		ok      bool
		tags    []string // the tags the clone has afterwards
		wantOut []string // lines of standard output or error
	}
	cases := []struct {
		name    string
		prepare func(t *testing.T, dir string) (args []string, want result)
	}{
		{"requires agree", func(t *testing.T, dir string) ([]string, result) {
			return []string{version}, result{ok: true, tags: all}
		}},
		{"dry run", func(t *testing.T, dir string) ([]string, result) {
			head := strings.TrimSpace(git(t, dir, "rev-parse", "HEAD"))
			var out []string
			for _, m := range mods {
				out = append(out, fmt.Sprintf("would tag %s (%s %s) at %s", tagName(m.dir, version), m.path, version, head))
			}
			return []string{"-n", version}, result{ok: true, wantOut: out}
		}},
		{"requires disagree", func(t *testing.T, dir string) ([]string, result) {
			f1, l1 := setRequire(t, dir, "pgstate", "github.com/d8da9184/opstate", "v0.18.0")
			f2, l2 := setRequire(t, dir, "ofprovider/pgtest", "github.com/d8da9184/opstate/pgstate", "v0.18.1")
			git(t, dir, "commit", "-q", "-am", "requires disagree")
			return []string{version}, result{wantOut: []string{
				fmt.Sprintf("%s:%d: require github.com/d8da9184/opstate v0.18.0, want %s", f1, l1, version),
				fmt.Sprintf("%s:%d: require github.com/d8da9184/opstate/pgstate v0.18.1, want %s", f2, l2, version),
			}}
		}},
		{"requires disagree, dry run", func(t *testing.T, dir string) ([]string, result) {
			f, l := setRequire(t, dir, "opstateprom", "github.com/d8da9184/opstate", "v0.0.0")
			git(t, dir, "commit", "-q", "-am", "requires disagree")
			return []string{"-n", version}, result{wantOut: []string{
				fmt.Sprintf("%s:%d: require github.com/d8da9184/opstate v0.0.0, want %s", f, l, version),
			}}
		}},
		{"another version than release/version", func(t *testing.T, dir string) ([]string, result) {
			return []string{"v99.0.0"}, result{wantOut: []string{"release/tag: release/version says " + version + ", not v99.0.0: set it (release/setversion v99.0.0) and commit first"}}
		}},
		{"setversion, then tag", func(t *testing.T, dir string) ([]string, result) {
			mustRun(t, dir, nil, "bash", "release/setversion", "v99.1.0")
			git(t, dir, "commit", "-q", "-am", "v99.1.0")
			var want []string
			for _, m := range mods {
				want = append(want, tagName(m.dir, "v99.1.0"))
			}
			slices.Sort(want)
			return []string{"v99.1.0"}, result{ok: true, tags: want}
		}},
		{"not a version", func(t *testing.T, dir string) ([]string, result) {
			v := strings.TrimPrefix(version, "v")
			return []string{v}, result{wantOut: []string{"release/tag: " + v + " is not a version vX.Y.Z"}}
		}},
		{"changed file", func(t *testing.T, dir string) ([]string, result) {
			if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module github.com/d8da9184/opstate\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			return []string{version}, result{wantOut: []string{"release/tag: the work tree is not clean:", " M go.mod"}}
		}},
		{"untracked file", func(t *testing.T, dir string) ([]string, result) {
			if err := os.WriteFile(filepath.Join(dir, "new.go"), []byte("package opstate\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			return []string{version}, result{wantOut: []string{"release/tag: the work tree is not clean:", "?? new.go"}}
		}},
		{"not on main", func(t *testing.T, dir string) ([]string, result) {
			git(t, dir, "checkout", "-q", "-b", "topic")
			return []string{version}, result{wantOut: []string{"release/tag: HEAD is topic, not main"}}
		}},
		{"a tag exists", func(t *testing.T, dir string) ([]string, result) {
			tag := tagName("pgstate", version)
			git(t, dir, "tag", "-a", "-m", "earlier", tag)
			return []string{version}, result{tags: []string{tag}, wantOut: []string{"release/tag: tag " + tag + " exists already"}}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			git(t, ".", "clone", "-q", template, dir)
			args, want := c.prepare(t, dir)
			out, errOut, err := run(dir, gitEnv, "bash", append([]string{"release/tag"}, args...)...)
			if (err == nil) != want.ok {
				t.Fatalf("release/tag %s: %v; want success %v\nstdout:\n%sstderr:\n%s", strings.Join(args, " "), err, want.ok, out, errOut)
			}
			lines := strings.Split(out+errOut, "\n")
			for _, w := range want.wantOut {
				if !slices.Contains(lines, w) {
					t.Errorf("release/tag %s printed no line %q; printed:\n%s%s", strings.Join(args, " "), w, out, errOut)
				}
			}
			if got := tags(t, dir); !slices.Equal(got, want.tags) {
				t.Errorf("tags after release/tag %s = %q; want %q", strings.Join(args, " "), got, want.tags)
			}
			if !want.ok || len(want.tags) == 0 {
				return
			}
			head := git(t, dir, "rev-parse", "HEAD")
			for _, tag := range want.tags {
				if typ := git(t, dir, "cat-file", "-t", "refs/tags/"+tag); typ != "tag\n" {
					t.Errorf("tag %s is a %s; want an annotated tag", tag, strings.TrimSpace(typ))
				}
				if at := git(t, dir, "rev-parse", tag+"^{commit}"); at != head {
					t.Errorf("tag %s is at %s; want HEAD, %s", tag, strings.TrimSpace(at), strings.TrimSpace(head))
				}
			}
			// The template is the clone's origin: nothing was pushed to it.
			if got := tags(t, template); len(got) != 0 {
				t.Errorf("the origin has tags %q; want none (release/tag pushes nothing)", got)
			}
		})
	}
}
