package service

import "testing"

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern string
		yes     []string
		no      []string
	}{
		{"/", []string{"/"}, []string{"", "/a", "//"}},
		{"/a/b", []string{"/a/b"}, []string{"/a", "/a/b/", "/a/bc", "/a/b/c"}},
		{"/a/b/", []string{"/a/b/"}, []string{"/a/b"}},
		{"/*", []string{"/", "/x", "/x/y/z"}, []string{"", "x"}},
		{"/a/*", []string{"/a", "/a/", "/a/b", "/a/b/c"}, []string{"/ab", "/b/a", "/"}},
		{"/users/{id}", []string{"/users/1", "/users/é"}, []string{"/users", "/users/", "/users/1/2", "/user/1"}},
		{"/users/{id}/posts/{post}", []string{"/users/1/posts/2"}, []string{"/users/1/posts", "/users/1/posts/2/x", "/users//posts/2"}},
		{"/users/{id}/*", []string{"/users/1", "/users/1/x/y"}, []string{"/users", "/users/"}},
	}
	for _, tt := range tests {
		m, err := ParseMatch(tt.pattern)
		if err != nil {
			t.Fatalf("ParseMatch(%q): %v", tt.pattern, err)
		}
		for _, p := range tt.yes {
			if !m.Matches(p) {
				t.Errorf("%q should match %q", tt.pattern, p)
			}
		}
		for _, p := range tt.no {
			if m.Matches(p) {
				t.Errorf("%q should not match %q", tt.pattern, p)
			}
		}
	}
}

func TestParseMatchRejects(t *testing.T) {
	for _, p := range []string{"", "a/b", "/a*", "/a/*/b", "/{}", "/{1d}", "/{id}/{id}", "/a{id}", "/a//{id}", "/{id"} {
		if _, err := ParseMatch(p); err == nil {
			t.Errorf("ParseMatch(%q) accepted an invalid pattern", p)
		}
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	m, err := ParseMatch("/users/{id}/posts/*")
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { m.Matches("/users/42/posts/7/comments") }); n != 0 {
		t.Fatalf("Matches allocates %v times per call", n)
	}
}
