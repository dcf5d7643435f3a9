//go:build unix

package config

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readWithin is ReadFile that fails the test, instead of hanging it, when the read waits.
func readWithin(t *testing.T, path string) ([]byte, error) {
	t.Helper()
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		data, err := ReadFile(path)
		done <- result{data, err}
	}()
	select {
	case r := <-done:
		return r.data, r.err
	case <-time.After(10 * time.Second): // a read that does not wait takes microseconds
		t.Fatalf("ReadFile(%s) still waiting after 10s", path)
		return nil, nil
	}
}

// TestReadFileRefusesWhatIsNotARegularFile: a FIFO (no writer: opening it for reading would wait
// for one), a character device, a symlink to one and a directory are refused at once, naming what
// they are; nothing is read from them.
func TestReadFileRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.json")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero.json")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	for path, kind := range map[string]string{
		fifo:        "a FIFO",
		"/dev/zero": "a character device",
		zero:        "a character device",
		dir:         "a directory",
	} {
		data, err := readWithin(t, path)
		var ce *Error
		if !errors.As(err, &ce) || len(ce.Problems) != 1 || !strings.Contains(ce.Problems[0].Reason, "not a regular file ("+kind+")") {
			t.Errorf("ReadFile(%s) = %d bytes, %v; want refused as not a regular file (%s)", path, len(data), err, kind)
		}
	}
}

// TestReadFileCapsWhatItReads: a 100 MB file is refused naming the cap, having cost no more
// than the cap in memory; a file of exactly the cap is read.
func TestReadFileCapsWhatItReads(t *testing.T) {
	dir := t.TempDir()
	huge := filepath.Join(dir, "huge.json")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(100 << 20); err != nil { // sparse: 100 MB of zeros on no disk
		t.Fatal(err)
	}
	f.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = readWithin(t, huge)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "larger than 4 MiB (4194304 bytes)") {
		t.Errorf("a 100 MB file: %v, want refused naming the 4 MiB cap", err)
	}
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > MaxFileBytes+1<<20 {
		t.Errorf("refusing a 100 MB file allocated %d bytes, more than the cap", allocated)
	}
	exact := filepath.Join(dir, "exact.json")
	if err := os.WriteFile(exact, []byte("{}"+strings.Repeat(" ", MaxFileBytes-2)), 0o600); err != nil {
		t.Fatal(err)
	}
	if data, err := readWithin(t, exact); err != nil || len(data) != MaxFileBytes {
		t.Errorf("a file of exactly the cap: %d bytes, %v", len(data), err)
	}
}

// TestReadFileFollowsTheConfigMapLayout: a mounted ConfigMap's file is a symlink to ..data/FILE,
// ..data a symlink to the timestamped directory of the current version, swapped for a new one by
// a rename (kubelet's AtomicWriter): ReadFile reads through both links, before and after a swap.
func TestReadFileFollowsTheConfigMapLayout(t *testing.T) {
	dir := t.TempDir()
	writeConfigMapVersion(t, dir, "..2026_12_06_07_00_00.1", `{"seed": 1}`)
	if err := os.Symlink(filepath.Join("..data", "config.json"), filepath.Join(dir, "config.json")); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "config.json")
	if data, err := readWithin(t, file); err != nil || string(data) != `{"seed": 1}` {
		t.Fatalf("first version: %q, %v", data, err)
	}
	writeConfigMapVersion(t, dir, "..2026_12_06_07_01_00.2", `{"seed": 2}`)
	if data, err := readWithin(t, file); err != nil || string(data) != `{"seed": 2}` {
		t.Fatalf("after the swap: %q, %v", data, err)
	}
}

// writeConfigMapVersion writes config.json into a new version directory of dir and points
// ..data at it as kubelet does: a new link ..data_tmp renamed over ..data.
func writeConfigMapVersion(t *testing.T, dir, version, content string) {
	t.Helper()
	if err := os.Mkdir(filepath.Join(dir, version), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, version, "config.json"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(version, filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
}
