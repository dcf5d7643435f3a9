package test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// maxReadmeLines keeps the README a front page: the reference lives in docs/.
const maxReadmeLines = 300

// TestReadmeIsAFrontPage: the README stays short, keeps the two commands and the performance
// paragraph bench/driver rewrites, and links every page of docs/, so none is orphaned.
func TestReadmeIsAFrontPage(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	if n := strings.Count(readme, "\n"); n > maxReadmeLines {
		t.Errorf("README.md has %d lines, more than %d: move the reference into docs/", n, maxReadmeLines)
	}
	for _, want := range []string{"make run ", "make test ", "<!-- perf:begin", "<!-- perf:end -->"} {
		if !strings.Contains(readme, want) {
			t.Errorf("README.md lacks %q", want)
		}
	}
	pages, err := filepath.Glob("../docs/*.md")
	if err != nil || len(pages) == 0 {
		t.Fatalf("no docs/*.md: %v", err)
	}
	for _, p := range pages {
		if link := "](docs/" + filepath.Base(p); !strings.Contains(readme, link) {
			t.Errorf("README.md does not link %s", strings.TrimPrefix(p, "../"))
		}
	}
}

// markdownLink is a link in Markdown text: its target, then an optional #anchor.
var markdownLink = regexp.MustCompile(`\]\(([^)\s#]*)(#[^)\s]*)?\)`)

// TestDocLinksResolve: every relative link of the README and docs/ names a file of the repository,
// and every anchor into a Markdown page names one of its headings, so moving a section breaks a
// test instead of a reader's click.
func TestDocLinksResolve(t *testing.T) {
	pages, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	pages = append(pages, "../README.md")
	checked := 0
	for _, page := range pages {
		data, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range outsideCodeBlocks(string(data)) {
			for _, m := range markdownLink.FindAllStringSubmatch(line, -1) {
				target, anchor := m[1], strings.TrimPrefix(m[2], "#")
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				file := page
				if target != "" {
					file = filepath.Join(filepath.Dir(page), target)
				}
				where := strings.TrimPrefix(page, "../") + ":" + strconv.Itoa(i+1)
				if _, err := os.Stat(file); err != nil {
					t.Errorf("%s: link %s: no such file", where, m[0])
					continue
				}
				if anchor != "" && strings.HasSuffix(file, ".md") && !headingAnchors(t, file)[anchor] {
					t.Errorf("%s: link %s: %s has no heading with anchor #%s", where, m[0], strings.TrimPrefix(file, "../"), anchor)
				}
				checked++
			}
		}
	}
	if checked < 50 {
		t.Fatalf("only %d links checked", checked)
	}
}

// outsideCodeBlocks is the page's lines, with those inside fenced code blocks blanked (their
// brackets are code, not links).
func outsideCodeBlocks(page string) []string {
	lines := strings.Split(page, "\n")
	in := false
	for i, l := range lines {
		if strings.HasPrefix(l, "```") {
			in = !in
			lines[i] = ""
			continue
		}
		if in {
			lines[i] = ""
		}
	}
	return lines
}

// headingAnchors are the anchors GitHub gives a page's headings: lower case, spaces to hyphens,
// punctuation other than hyphens and underscores dropped.
func headingAnchors(t *testing.T, file string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, l := range outsideCodeBlocks(string(data)) {
		text, ok := strings.CutPrefix(strings.TrimLeft(l, "#"), " ")
		if !ok || !strings.HasPrefix(l, "#") {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(text)) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
				b.WriteRune(r)
			}
		}
		anchors[b.String()] = true
	}
	return anchors
}
