package opstate_test

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path"
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
// repository. Where a list of such citations is followed by a test file's
// name in parentheses (`TestA`, `TestB` (a_test.go)), each is a func of
// that file. Other file names in prose are not checked.
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
	write("sub/y_test.go", "package y\n\nfunc TestElsewhere(t *testing.T) {}\n")
	write("docs/other.md", "# Other\n\n## Part one\n\n## Part one\n")
	good := write("good.md", strings.Join([]string{
		"# Good page",
		"",
		"## What it's for: `code` *and* more",
		"",
		"See [other](docs/other.md#part-one-1), [here](#what-its-for-code-and-more),",
		"[web](https://example.com/#nothing), `TestThere`, `BenchmarkThere/sub`, `TestTh*` and",
		"`go test -run '^$' -bench BenchmarkThere .`.",
		"`TestThere` and `BenchmarkThere/sub` (x_test.go), `TestElsewhere` (y_test.go: any",
		"directory), `TestTh*`, `BenchmarkThere`,",
		"`TestThere` (x_test.go) and `TestElsewhere`",
		"(sub/y_test.go, its path); `TestThere` (not a file name) and `TestElsewhere` (sub/y_test.go).",
		"",
		"| test | file |",
		"| --- | --- |",
		"| `TestThere` | (x_test.go) |",
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
		{name: "test in another file", line: "`TestElsewhere` (x_test.go)", want: "TestElsewhere"},
		{name: "one of a list in another file", line: "`TestThere`, `BenchmarkThere` and `TestElsewhere` (x_test.go)", want: "TestElsewhere"},
		{name: "one of a wrapped list in another file", line: "`TestThere`,\n`TestElsewhere` (x_test.go)", want: "TestElsewhere", at: 5},
		{name: "no file of the name", line: "`TestThere` (gone_test.go)", want: "gone_test.go"},
		{name: "wrong path", line: "`TestThere` (sub/x_test.go)", want: "sub/x_test.go"},
		{name: "no func of a cited prefix in the file", line: "`TestEls*` (x_test.go)", want: "TestEls*"},
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

// testFuncs returns the top-level funcs whose names begin with Test,
// Benchmark, Fuzz or Example in every *_test.go file under root, .git
// left out: for each name, the paths of the files that declare it,
// relative to root, with slashes.
func testFuncs(root string) (map[string][]string, error) {
	decl := regexp.MustCompile(`(?m)^func\s+((?:Test|Benchmark|Fuzz|Example)\w*)\s*[\[(]`)
	funcs := map[string][]string{}
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
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		for _, m := range decl.FindAllSubmatch(src, -1) {
			funcs[string(m[1])] = append(funcs[string(m[1])], filepath.ToSlash(rel))
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
	// fileAfter matches, right after a code span, a parenthesis that
	// opens with the name of a test file: `TestX` (x_test.go...
	fileAfter = regexp.MustCompile(`^\s+\(([\w./-]+_test\.go)\b`)
	// listSep matches what separates the code spans of a list.
	listSep = regexp.MustCompile(`^(?:,\s+and\s+|,\s+|\s+and\s+)$`)
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
func checkDocs(docs []string, funcs map[string][]string) []string {
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
		problems = append(problems, checkFileCitations(doc, lines, funcs)...)
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
func cited(funcs map[string][]string, name string) bool {
	return len(citedIn(funcs, name)) > 0
}

// citedIn returns the files that declare name, or with a '*' after it a
// func it begins.
func citedIn(funcs map[string][]string, name string) []string {
	prefix, glob := strings.CutSuffix(name, "*")
	if !glob {
		return funcs[name]
	}
	var files []string
	for f, in := range funcs {
		if strings.HasPrefix(f, prefix) {
			files = append(files, in...)
		}
	}
	return files
}

// checkFileCitations checks, in the paragraphs of the Markdown file doc
// (fenced code left out), every list of code spans followed by a test
// file's name in parentheses, `TestA`, `TestB` and `TestC` (a_test.go):
// each test, benchmark, fuzz target or example the list cites must be a
// func of a file of that name (anywhere in the repository), or at that
// path from the repository's root when the name has a '/'. It returns one
// message, "doc:line: ...", for each that is not.
func checkFileCitations(doc string, lines []docLine, funcs map[string][]string) []string {
	var problems []string
	// The text of each paragraph, its lines joined by newlines, and the
	// number of its first line.
	var paras []string
	var starts []int
	for i := 0; i < len(lines); i++ {
		if lines[i].fence || strings.TrimSpace(lines[i].text) == "" {
			continue
		}
		start := i
		for i < len(lines) && !lines[i].fence && strings.TrimSpace(lines[i].text) != "" {
			i++
		}
		var text []string
		for _, l := range lines[start:i] {
			text = append(text, l.text)
		}
		paras = append(paras, strings.Join(text, "\n"))
		starts = append(starts, start+1)
	}
	for k, p := range paras {
		spans := codeSpan.FindAllStringIndex(p, -1)
		for i, span := range spans {
			m := fileAfter.FindStringSubmatchIndex(p[span[1]:])
			if m == nil {
				continue
			}
			file := p[span[1]+m[2] : span[1]+m[3]]
			line := starts[k] + strings.Count(p[:span[1]+m[2]], "\n")
			first := i
			for first > 0 && listSep.MatchString(p[spans[first-1][1]:spans[first][0]]) {
				first--
			}
			for _, s := range spans[first : i+1] {
				for _, name := range citedFunc.FindAllString(p[s[0]:s[1]], -1) {
					if bare[name] {
						continue
					}
					in := citedIn(funcs, name)
					if len(in) == 0 {
						continue // reported as no func at all
					}
					if !slices.ContainsFunc(in, func(f string) bool {
						return f == file || !strings.Contains(file, "/") && path.Base(f) == file
					}) {
						problems = append(problems, fmt.Sprintf("%s:%d: %s is cited in %s but is a func of %s", doc, line, name, file, strings.Join(in, ", ")))
					}
				}
			}
		}
	}
	return problems
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
