package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestParseLoadNewConnections: -new-connections and the run file's new_connections ask for a
// connection per request; neither given keeps connections alive, and the flag overrides the file.
func TestParseLoadNewConnections(t *testing.T) {
	file := filepath.Join(t.TempDir(), "run.json")
	if err := os.WriteFile(file, []byte(`{"targets": [{"url": "http://127.0.0.1:1/"}], "rate": 1, "duration": "1s", "new_connections": true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"-rate", "1", "-duration", "1s", "http://127.0.0.1:1/"}, false},
		{[]string{"-rate", "1", "-duration", "1s", "-new-connections", "http://127.0.0.1:1/"}, true},
		{[]string{"-f", file}, true},
		{[]string{"-f", file, "-new-connections=false"}, false},
	} {
		spec, _, err := parseLoad(c.args, io.Discard)
		if err != nil {
			t.Fatalf("%q: %v", c.args, err)
		}
		if spec.NewConnections != c.want {
			t.Errorf("%q: NewConnections %v, want %v", c.args, spec.NewConnections, c.want)
		}
	}
}
