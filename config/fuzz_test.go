package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary documents to the loader: it never panics, every rejection is an *Error
// with at least one problem, and every accepted document passes the semantic checks.
func FuzzParse(f *testing.F) {
	for _, file := range []string{"examples/full.json", "testdata/bad.json", "testdata/semantic.json"} {
		data, err := os.ReadFile(filepath.FromSlash(file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"routes": [{"name": "a", "match": "/{id}/*", "delay": "1h1m1.5s"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz", data)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("rejection without problems: %v", err)
			}
			return
		}
		if ps := cfg.Check(); len(ps) > 0 {
			t.Fatalf("accepted a document that fails Check: %v", ps)
		}
	})
}
