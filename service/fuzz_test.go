package service

import (
	"strings"
	"testing"
)

// FuzzMatch checks the matcher against what a pattern means, for any pattern and path: it never
// panics, an exact pattern matches only itself, and a matching path has the pattern's literal
// segments in place.
func FuzzMatch(f *testing.F) {
	f.Add("/users/{id}/posts/*", "/users/42/posts/7")
	f.Add("/a/*", "/a")
	f.Add("/*", "/")
	f.Add("/exact/", "/exact")
	f.Add("/{a}/{b}", "//")
	f.Add("/x/{id}", "/x/\x00")
	f.Fuzz(func(t *testing.T, pattern, path string) {
		m, err := ParseMatch(pattern)
		if err != nil {
			return
		}
		got := m.Matches(path)
		if m.exact && got != (path == pattern) {
			t.Fatalf("exact %q vs %q: %v", pattern, path, got)
		}
		if !got {
			return
		}
		if !strings.HasPrefix(path, "/") {
			t.Fatalf("%q matched %q, which is not a path", pattern, path)
		}
		if m.exact {
			return
		}
		segs := strings.Split(path[1:], "/")
		if len(segs) < len(m.segs) || (!m.wildcard && len(segs) != len(m.segs)) {
			t.Fatalf("%q matched %q with the wrong number of segments", pattern, path)
		}
		for i, want := range m.segs {
			if want == "" && segs[i] == "" || want != "" && segs[i] != want {
				t.Fatalf("%q matched %q but segment %d is %q", pattern, path, i, segs[i])
			}
		}
	})
}
