package service

import (
	"fmt"
	"strings"
)

// Match is a compiled route pattern: an exact path (/a/b), a prefix (/a/* also matches /a),
// or segments with parameters (/users/{id}), optionally ending in a wildcard (/users/{id}/*).
// Matching walks the path in place and never allocates, since it runs on every request.
type Match struct {
	raw      string
	exact    bool
	segs     []string // literal segments; "" stands for a {param}
	wildcard bool
}

// ParseMatch compiles a pattern, naming what is wrong with it when it is not valid.
func ParseMatch(pattern string) (Match, error) {
	if !strings.HasPrefix(pattern, "/") {
		return Match{}, fmt.Errorf("pattern %q must start with /", pattern)
	}
	m := Match{raw: pattern}
	body := pattern[1:]
	if body == "*" {
		m.wildcard = true
		return m, nil
	}
	if rest, ok := strings.CutSuffix(body, "/*"); ok {
		m.wildcard = true
		body = rest
	}
	if !m.wildcard && !strings.ContainsAny(body, "{}*") {
		m.exact = true // compared as written, trailing slash included
		return m, nil
	}
	params := map[string]bool{}
	for _, seg := range strings.Split(body, "/") {
		switch {
		case seg == "":
			return Match{}, fmt.Errorf("pattern %q has an empty segment (//)", pattern)
		case strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}"):
			name := seg[1 : len(seg)-1]
			if !validParamName(name) {
				return Match{}, fmt.Errorf("pattern %q: parameter %q must be a name such as {id}", pattern, seg)
			}
			if params[name] {
				return Match{}, fmt.Errorf("pattern %q: parameter {%s} appears twice", pattern, name)
			}
			params[name] = true
			m.segs = append(m.segs, "")
		case strings.ContainsAny(seg, "{}*"):
			return Match{}, fmt.Errorf("pattern %q: segment %q mixes literal text with {, } or *; a wildcard may only end the pattern as /*", pattern, seg)
		default:
			m.segs = append(m.segs, seg)
		}
	}
	return m, nil
}

func validParamName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		letter := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// String returns the pattern as written.
func (m Match) String() string { return m.raw }

// Matches reports whether path (the decoded URL path) matches the pattern.
func (m Match) Matches(path string) bool {
	if m.exact {
		return path == m.raw
	}
	rest := path
	for _, seg := range m.segs {
		if len(rest) == 0 || rest[0] != '/' {
			return false
		}
		rest = rest[1:]
		cur := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			cur, rest = rest[:i], rest[i:]
		} else {
			rest = ""
		}
		if seg == "" {
			if cur == "" {
				return false
			}
		} else if cur != seg {
			return false
		}
	}
	if m.wildcard {
		// A bare /* must still see a path; otherwise what is left is "" or starts with /.
		return len(m.segs) > 0 || len(path) > 0 && path[0] == '/'
	}
	return rest == ""
}
