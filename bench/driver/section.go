package main

import (
	"fmt"
	"os"
	"strings"
)

// replaceSection puts text, which carries both markers itself, in place of the lines of doc
// from the one holding "<!-- NAME:begin" to the one holding "<!-- NAME:end -->"; a doc without
// the section gets text appended after a blank line.
func replaceSection(doc, name, text string) string {
	begin, end := "<!-- "+name+":begin", "<!-- "+name+":end -->"
	text = strings.TrimRight(text, "\n")
	lines := strings.SplitAfter(doc, "\n")
	var b strings.Builder
	found, skip := false, false
	for _, line := range lines {
		switch {
		case !found && strings.Contains(line, begin):
			b.WriteString(text + "\n")
			found, skip = true, true
		case skip && strings.Contains(line, end):
			skip = false
		case !skip:
			b.WriteString(line)
		}
	}
	if !found {
		if doc != "" && !strings.HasSuffix(doc, "\n") {
			b.WriteString("\n")
		}
		b.WriteString("\n" + text + "\n")
	}
	return b.String()
}

// writeSection rewrites the named section of the file.
func writeSection(file, name, text string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	out := replaceSection(string(b), name, text)
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(out), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, file); err != nil {
		return fmt.Errorf("section %s of %s: %w", name, file, err)
	}
	return nil
}
