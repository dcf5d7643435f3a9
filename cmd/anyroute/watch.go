package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/anyroute/anyroute/config"
)

// watchDebounce is how long the watcher waits after a change before it reloads: an editor's save
// or Kubernetes' swap of a mounted ConfigMap is several events in a row.
const watchDebounce = 200 * time.Millisecond

// watchFile calls changed each time the content of file changes, until ctx ends. It watches the
// file's directory, not the file: editors and Kubernetes replace a file rather than write it in
// place (a rename; a mounted ConfigMap's ..data symlink swapped to a new directory), and a watch
// on the old file would see nothing more. Events are debounced, and a change that leaves the
// content as it was (a touch, the swap's intermediate steps) calls nothing.
func watchFile(ctx context.Context, file string, logger log.Logger, changed func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("config watcher: %w", err)
	}
	defer w.Close()
	dir := filepath.Dir(file)
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("config watcher: %s: %w", dir, err)
	}
	last := contentHash(file)
	var settle <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-w.Errors:
			_ = level.Warn(logger).Log("msg", "config watcher", "err", err)
		case <-w.Events:
			settle = time.After(watchDebounce) // every event in the directory: the file may be a symlink into it
		case <-settle:
			settle = nil
			if h := contentHash(file); h != nil && !bytes.Equal(h, last) {
				last = h
				changed()
			}
		}
	}
}

// contentHash is the sha256 of the file's content, read as a reload reads it (config.ReadFile:
// regular files only, never waiting, at most the cap), nil while there is no file (mid-swap).
// A file that is there and refused hashes as its refusal: turning into a FIFO, a device or a
// file past the cap is a change, which the reload it asks for refuses and reports, once.
func contentHash(file string) []byte {
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	b, err := config.ReadFile(file)
	if err != nil {
		b = []byte("refused: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return sum[:]
}
