package release_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
)

// gitEnv makes git in the tests ignore the machine's and the user's
// configuration (signing, hooks, default branch) and gives it an
// identity for commits and annotated tags.
var gitEnv = []string{
	"GIT_CONFIG_GLOBAL=/dev/null",
	"GIT_CONFIG_NOSYSTEM=1",
	"GIT_AUTHOR_NAME=opstate",
	"GIT_AUTHOR_EMAIL=dev@opstate",
	"GIT_COMMITTER_NAME=opstate",
	"GIT_COMMITTER_EMAIL=dev@opstate",
}

// run runs name with args in dir, with env added to the process's
// environment, and returns its standard output and error.
func run(dir string, env []string, name string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// mustRun runs name as run does and fails the test if it fails.
func mustRun(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, errOut, err := run(dir, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s in %s: %v\n%s%s", name, strings.Join(args, " "), dir, err, out, errOut)
	}
	return out
}

// git runs git in dir as mustRun does, with gitEnv.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return mustRun(t, dir, gitEnv, "git", args...)
}

// repoRoot returns the top directory of the repository the test runs
// in.
func repoRoot(t *testing.T) string {
	t.Helper()
	return strings.TrimSpace(git(t, ".", "rev-parse", "--show-toplevel"))
}

// workFiles returns the files of dir's work tree that a commit of all of
// it would hold (tracked or untracked, less those git ignores or that
// were deleted), as slash paths relative to dir.
func workFiles(t *testing.T, dir string) []string {
	t.Helper()
	out := git(t, dir, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	var files []string
	for _, p := range strings.Split(out, "\x00") {
		if p == "" {
			continue
		}
		if fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(p))); err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the work tree, or a link
		}
		files = append(files, p)
	}
	sort.Strings(files)
	return files
}

// copyRepo copies the work tree of the repository the test runs in into
// a new git repository, one commit on branch main, and returns its
// directory.
func copyRepo(t *testing.T) string {
	t.Helper()
	src, dst := repoRoot(t), t.TempDir()
	for _, p := range workFiles(t, src) {
		from, to := filepath.Join(src, filepath.FromSlash(p)), filepath.Join(dst, filepath.FromSlash(p))
		fi, err := os.Stat(from)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, data, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	git(t, dst, "init", "-q", "-b", "main")
	git(t, dst, "add", "-A")
	git(t, dst, "commit", "-q", "-m", "copy of the work tree")
	return dst
}

// A repoModule is a module of the repository.
type repoModule struct {
	dir  string // slash path relative to the repository's top, "." for the root
	path string // module path
}

// modules returns the modules of the repository in root: each directory
// with a go.mod, but testdata and the directories whose names start with
// "." or "_", which the go command ignores.
func modules(t *testing.T, root string) []repoModule {
	t.Helper()
	var mods []repoModule
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != root && (n == "testdata" || strings.HasPrefix(n, ".") || strings.HasPrefix(n, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Name() != "go.mod" {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(p))
		if err != nil {
			return err
		}
		mods = append(mods, repoModule{dir: filepath.ToSlash(rel), path: modfile.ModulePath(data)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return mods
}

// releaseVersion returns what release/version in root says.
func releaseVersion(t *testing.T, root string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "release", "version"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// publicModules are the modules users depend on.
var publicModules = []string{
	"github.com/d8da9184/opstate",
	"github.com/d8da9184/opstate/ofprovider",
	"github.com/d8da9184/opstate/opstateprom",
	"github.com/d8da9184/opstate/pgstate",
}
