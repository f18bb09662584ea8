package opstate_test

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// TestDocs checks README.md and every docs/*.md of the repository: each
// relative link names a file or directory that exists, each #anchor a
// heading of the Markdown file it points into (by GitHub's rules for the
// heading's id), and each test, benchmark, fuzz target or example cited in
// backquotes (`TestXxx`, `BenchmarkXxx/sub`, a `go test -bench
// BenchmarkXxx` command) is a func of some *_test.go file in the
// repository. File names cited in prose are not checked.
func TestDocs(t *testing.T) {
	docs, err := filepath.Glob(filepath.Join("docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs = append([]string{"README.md"}, docs...)
	funcs, err := testFuncs(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, problem := range checkDocs(docs, funcs) {
		t.Error(problem)
	}
}

// TestDocsCheckFindsBreakage runs the checks of TestDocs over pages made
// for it, each with one fault, and wants each fault reported at its line:
// a check that reports nothing would let TestDocs pass on any page.
func TestDocsCheckFindsBreakage(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("x_test.go", "package x\n\nfunc TestThere(t *testing.T) {}\nfunc BenchmarkThere(b *testing.B) {}\nfunc (s) TestMethod() {}\n")
	write("docs/other.md", "# Other\n\n## Part one\n\n## Part one\n")
	good := write("good.md", strings.Join([]string{
		"# Good page",
		"",
		"## What it's for: `code` *and* more",
		"",
		"See [other](docs/other.md#part-one-1), [here](#what-its-for-code-and-more),",
		"[web](https://example.com/#nothing), `TestThere`, `BenchmarkThere/sub`, `TestTh*` and",
		"`go test -run '^$' -bench BenchmarkThere .`.",
		"",
		"```sh",
		"# not a heading: [no link](missing.md)",
		"go test -run '^$' -bench 'BenchmarkThere/(a|b)' .",
		"```",
	}, "\n"))
	cases := []struct {
		name, line, want string
		at               int // the line of the fault; 0: 4, the one of line
	}{
		{name: "missing file", line: "[gone](docs/gone.md)", want: "docs/gone.md"},
		{name: "missing anchor", line: "[gone](docs/other.md#part-three)", want: "#part-three"},
		{name: "missing own anchor", line: "[gone](#nowhere)", want: "#nowhere"},
		{name: "duplicate past its count", line: "[gone](docs/other.md#part-one-2)", want: "#part-one-2"},
		{name: "missing test", line: "`TestNowhere` proves it", want: "TestNowhere"},
		{name: "missing benchmark in a command", line: "`go test -bench BenchmarkNowhere .`", want: "BenchmarkNowhere"},
		{name: "a method is no test", line: "`TestMethod`", want: "TestMethod"},
		{name: "no func of a cited prefix", line: "`TestWhere*`", want: "TestWhere*"},
		{name: "missing benchmark in a code block", line: "```sh\ngo test -bench BenchmarkNowhere .\n```", want: "BenchmarkNowhere", at: 5},
	}
	funcs, err := testFuncs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if problems := checkDocs([]string{good}, funcs); len(problems) != 0 {
		t.Fatalf("checkDocs of a sound page = %q; want nothing", problems)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := write("bad.md", "# Bad\n\ntext\n"+c.line+"\n")
			problems := checkDocs([]string{p}, funcs)
			want := fmt.Sprintf("%s:%d:", p, max(c.at, 4))
			if len(problems) != 1 || !strings.HasPrefix(problems[0], want) || !strings.Contains(problems[0], c.want) {
				t.Errorf("checkDocs(%q) = %q; want one problem at %s naming %s", c.line, problems, want, c.want)
			}
		})
	}
}

// testFuncs returns the names of the top-level funcs whose names begin
// with Test, Benchmark, Fuzz or Example in every *_test.go file under
// root, .git left out.
func testFuncs(root string) (map[string]bool, error) {
	decl := regexp.MustCompile(`(?m)^func\s+((?:Test|Benchmark|Fuzz|Example)\w*)\s*[\[(]`)
	funcs := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return fs.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range decl.FindAllSubmatch(src, -1) {
			funcs[string(m[1])] = true
		}
		return nil
	})
	return funcs, err
}

var (
	// inlineLink matches [text](target) and ![alt](target); the target
	// ends at a space (a title follows) or at the closing parenthesis.
	inlineLink = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)`)
	// refLink matches a reference definition: [label]: target.
	refLink = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)`)
	// codeSpan matches an inline code span of single backquotes.
	codeSpan = regexp.MustCompile("`[^`]+`")
	// citedFunc matches a name Go's test tool runs: Test, Benchmark, Fuzz
	// or Example, then nothing lower-case (TestXxx, not Testify); with a
	// '*' after it, it names every func it begins.
	citedFunc = regexp.MustCompile(`\b(?:Test|Benchmark|Fuzz|Example)(?:[A-Z0-9_]\w*)?\b\*?`)
	heading   = regexp.MustCompile(`^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$`)
	fence     = regexp.MustCompile("^ {0,3}(```+|~~~+)")
	// bare holds the prefixes alone, which name no function.
	bare = map[string]bool{"Test": true, "Benchmark": true, "Fuzz": true, "Example": true}
	// scheme matches a link target with a URL scheme: not a file here.
	scheme = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
)

// docLine is one line of a Markdown file, and whether it is inside a
// fenced code block.
type docLine struct {
	text  string
	fence bool
}

// readDoc returns the lines of the Markdown file at path.
func readDoc(path string) ([]docLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []docLine
	open := "" // the fence that opened the current block
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		text := sc.Text()
		m := fence.FindStringSubmatch(text)
		switch {
		case open == "" && m != nil:
			open = m[1]
			lines = append(lines, docLine{text, true})
		case open != "":
			if m != nil && m[1][0] == open[0] && len(m[1]) >= len(open) && strings.TrimSpace(text) == m[1] {
				open = ""
			}
			lines = append(lines, docLine{text, true})
		default:
			lines = append(lines, docLine{text, false})
		}
	}
	return lines, sc.Err()
}

// anchors returns the ids GitHub gives the headings of lines.
func anchors(lines []docLine) map[string]bool {
	ids := map[string]bool{}
	seen := map[string]int{}
	for _, l := range lines {
		if l.fence {
			continue
		}
		m := heading.FindStringSubmatch(l.text)
		if m == nil {
			continue
		}
		base := slug(m[2])
		id := base
		for n := seen[base]; ids[id]; n++ {
			id = base + "-" + strconv.Itoa(n)
		}
		seen[base]++
		ids[id] = true
	}
	return ids
}

// slug returns the id GitHub gives a heading of text: the text as
// rendered (links and code spans reduced to their text), lower-cased,
// each space a '-', and every character but letters, digits, '-' and '_'
// dropped.
func slug(text string) string {
	text = inlineLink.ReplaceAllStringFunc(text, func(s string) string {
		return s[strings.Index(s, "[")+1 : strings.Index(s, "](")]
	})
	text = strings.ReplaceAll(text, `\`, "")
	var b strings.Builder
	for _, r := range strings.TrimSpace(text) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.M, r):
			b.WriteRune(unicode.ToLower(r))
		case r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// checkDocs checks the Markdown files docs (paths relative to the current
// directory) against funcs, the test functions of the repository, and
// returns one message for each broken link or unknown test, as
// "file:line: ...".
func checkDocs(docs []string, funcs map[string]bool) []string {
	var problems []string
	report := func(path string, line int, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s:%d: ", path, line)+fmt.Sprintf(format, args...))
	}
	files := map[string][]docLine{}
	load := func(path string) ([]docLine, error) {
		if l, ok := files[path]; ok {
			return l, nil
		}
		l, err := readDoc(path)
		if err == nil {
			files[path] = l
		}
		return l, err
	}
	for _, doc := range docs {
		lines, err := load(doc)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		for i, l := range lines {
			n := i + 1
			var spans []string
			text := l.text
			if l.fence {
				spans = []string{text}
			} else {
				spans = codeSpan.FindAllString(text, -1)
				text = codeSpan.ReplaceAllString(text, "``")
			}
			for _, span := range spans {
				for _, name := range citedFunc.FindAllString(span, -1) {
					if !bare[name] && !cited(funcs, name) {
						report(doc, n, "%s is cited but is no func of any *_test.go", name)
					}
				}
			}
			if l.fence {
				continue
			}
			var targets []string
			for _, m := range inlineLink.FindAllStringSubmatch(text, -1) {
				targets = append(targets, m[1])
			}
			if m := refLink.FindStringSubmatch(text); m != nil {
				targets = append(targets, m[1])
			}
			for _, target := range targets {
				if target == "" || scheme.MatchString(target) {
					continue
				}
				file, anchor, _ := strings.Cut(target, "#")
				dest := doc
				if file != "" {
					dest = filepath.Join(filepath.Dir(doc), filepath.FromSlash(file))
					if _, err := os.Stat(dest); err != nil {
						report(doc, n, "link %q: %s does not exist", target, dest)
						continue
					}
				}
				if anchor == "" {
					continue
				}
				if !strings.HasSuffix(dest, ".md") {
					report(doc, n, "link %q: #%s points into %s, which has no headings to check", target, anchor, dest)
					continue
				}
				destLines, err := load(dest)
				if err != nil {
					report(doc, n, "link %q: %v", target, err)
					continue
				}
				if ids := anchors(destLines); !ids[anchor] {
					report(doc, n, "link %q: no heading of %s has the id #%s (ids: %s)", target, dest, anchor, strings.Join(sortedKeys(ids), " "))
				}
			}
		}
	}
	return problems
}

// cited reports whether name, or with a '*' after it every func it
// begins, names a func of funcs.
func cited(funcs map[string]bool, name string) bool {
	prefix, glob := strings.CutSuffix(name, "*")
	if !glob {
		return funcs[name]
	}
	for f := range funcs {
		if strings.HasPrefix(f, prefix) {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
