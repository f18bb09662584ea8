package release_test

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
)

// workFile is a file of a module's work tree, for modzip.Create.
type workFile struct {
	slash string // path relative to the module's directory
	name  string // path on disk
}

func (f workFile) Path() string                 { return f.slash }
func (f workFile) Lstat() (os.FileInfo, error)  { return os.Lstat(f.name) }
func (f workFile) Open() (io.ReadCloser, error) { return os.Open(f.name) }

// writeProxy lays out in dir a module proxy (GOPROXY=file://dir) that
// serves each module of the repository in root at version, and no other
// version, made from its work tree: for each module, dir/<escaped
// path>/@v/ holds list, version.info, version.mod (its go.mod) and
// version.zip. The zip holds what a commit of the work tree would (git's
// tracked and untracked files, less the ignored), less what the module
// zip format leaves out: the directories of other modules (pgstate/ is
// not in the root's zip) and vendor directories.
func writeProxy(t *testing.T, root, dir, version string) {
	t.Helper()
	info, err := json.Marshal(struct {
		Version string
		Time    time.Time
	}{version, time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range modules(t, root) {
		mdir := filepath.Join(root, filepath.FromSlash(m.dir))
		esc, err := module.EscapePath(m.path)
		if err != nil {
			t.Fatal(err)
		}
		vdir := filepath.Join(dir, filepath.FromSlash(esc), "@v")
		if err := os.MkdirAll(vdir, 0o755); err != nil {
			t.Fatal(err)
		}
		gomod, err := os.ReadFile(filepath.Join(mdir, "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string][]byte{
			"list":            []byte(version + "\n"),
			version + ".info": info,
			version + ".mod":  gomod,
		} {
			if err := os.WriteFile(filepath.Join(vdir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		var files []modzip.File
		for _, p := range workFiles(t, mdir) {
			files = append(files, workFile{p, filepath.Join(mdir, filepath.FromSlash(p))})
		}
		z, err := os.Create(filepath.Join(vdir, version+".zip"))
		if err != nil {
			t.Fatal(err)
		}
		if err := modzip.Create(z, module.Version{Path: m.path, Version: version}, files); err != nil {
			z.Close()
			t.Fatalf("zip of %s: %v", m.path, err)
		}
		if err := z.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
