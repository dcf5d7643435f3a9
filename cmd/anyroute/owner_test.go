package main

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/anyroute/anyroute/config"
	"github.com/anyroute/anyroute/transport"
)

// runOwner starts the owner of the config doc on its own goroutine, as the run group does, with
// file (when not "") as its config file; it stops at cleanup. replaced counts the rule swaps.
func runOwner(t *testing.T, doc, file string, hups chan os.Signal) (*configOwner, *int) {
	t.Helper()
	replaced := new(int)
	return runOwnerWith(t, doc, file, hups, func(config.Config, string, bool) error { *replaced++; return nil }), replaced
}

// runOwnerWith is runOwner with the function that applies a config's rules.
func runOwnerWith(t *testing.T, doc, file string, hups chan os.Signal, replace func(config.Config, string, bool) error) *configOwner {
	t.Helper()
	cfg, err := config.Parse("test", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	o := newConfigOwner(cfg, replace, prometheus.NewRegistry(), log.NewNopLogger())
	src := configSource{name: "test", doc: []byte(doc), parse: config.Parse}
	if file != "" {
		src.name = file
		src.read = func() ([]byte, error) { return config.ReadFile(file) }
	}
	o.setSource(src, hups)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- o.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the owner's Run: %v", err)
		}
	})
	return o
}

// statuses are the running routes' statuses by name.
func statuses(o *configOwner) map[string]int {
	got := map[string]int{}
	for _, r := range o.Config().(config.Config).Routes {
		got[r.Name] = r.Status
	}
	return got
}

// TestOwnerAppliesConcurrentPatches: two patches of different routes at the same moment, 200
// rounds: both are in force after every round.
func TestOwnerAppliesConcurrentPatches(t *testing.T) {
	o, replaced := runOwner(t, `{"routes": [{"name": "a", "match": "/a"}, {"name": "b", "match": "/b"}]}`, "", nil)
	ctx := context.Background()
	for round := 1; round <= 200; round++ {
		status := 200 + round
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, name := range []string{"a", "b"} {
			wg.Go(func() {
				_, errs[i] = o.PatchRoute(ctx, name, fmt.Appendf(nil, `{"status": %d}`, status))
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if got := statuses(o); got["a"] != status || got["b"] != status {
			t.Fatalf("round %d: a=%d b=%d, want both %d: a patch was lost", round, got["a"], got["b"], status)
		}
	}
	if *replaced != 400 {
		t.Errorf("%d rule swaps, want 400", *replaced)
	}
	if got := testutil.ToFloat64(o.lastOK); got != 1 {
		t.Errorf("app_config_last_reload_successful %v, want 1", got)
	}
}

// TestOwnerPatchRacesReloadAndSIGHUP: a patch of route b sent while the file (which changes
// route a) is reloaded by the watcher's request and by SIGHUP. Every change is applied in some
// order: a is always the file's, and b the file's (a reload came last and undid the patch, as
// documented) or the patch's (it came last, on top of the reloaded file), never the patch on the
// config before the reload.
func TestOwnerPatchRacesReloadAndSIGHUP(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.json")
	content := func(a int) string {
		return fmt.Sprintf(`{"routes": [{"name": "a", "match": "/a", "status": %d}, {"name": "b", "match": "/b", "status": 200}]}`, a)
	}
	if err := os.WriteFile(file, []byte(content(200)), 0o600); err != nil {
		t.Fatal(err)
	}
	hups := make(chan os.Signal) // unbuffered: a send returns once the owner has taken it
	o, _ := runOwner(t, content(200), file, hups)
	ctx := context.Background()
	orders := map[string]int{}
	for round := 1; round <= 200; round++ {
		if err := os.WriteFile(file, []byte(content(200+round)), 0o600); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var patchErr, reloadErr error
		wg.Go(func() { _, patchErr = o.PatchRoute(ctx, "b", fmt.Appendf(nil, `{"status": %d}`, 300+round)) })
		wg.Go(func() { reloadErr = o.reloadFrom(ctx, "file change") })
		wg.Go(func() { hups <- syscall.SIGHUP })
		wg.Wait()
		if err := errors.Join(patchErr, reloadErr); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		// Queued behind the SIGHUP's reload: once answered, that reload is done.
		if _, err := o.PatchRoute(ctx, "a", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		got := statuses(o)
		switch {
		case got["a"] != 200+round:
			t.Fatalf("round %d: a=%d, want the file's %d: a reload was lost", round, got["a"], 200+round)
		case got["b"] == 200:
			orders["a reload last"]++
		case got["b"] == 300+round:
			orders["the patch last"]++
		default:
			t.Fatalf("round %d: b=%d, want the file's 200 or the patch's %d", round, got["b"], 300+round)
		}
		if got := testutil.ToFloat64(o.lastOK); got != 1 {
			t.Fatalf("round %d: app_config_last_reload_successful %v, want 1", round, got)
		}
	}
	t.Logf("orders seen: %v", orders)
}

// TestOwnerRefusals: whatever refuses a change, the gauge turns 0, the running config stays, and
// the error tells the admin handler the status to answer with.
func TestOwnerRefusals(t *testing.T) {
	doc := `{"routes": [{"name": "a", "match": "/a"}]}`
	file := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	fromFile, _ := runOwner(t, doc, file, nil)
	noFile, _ := runOwner(t, doc, "", nil)
	broken := runOwnerWith(t, doc, "", nil, func(config.Config, string, bool) error { return errors.New("the router refused") })
	for _, tt := range []struct {
		name   string
		o      *configOwner
		change func(*configOwner) error
		status int
		says   string
	}{
		{"reload without a file", noFile, func(o *configOwner) error { return o.Reload(ctx) }, 409, "no config file"},
		{"patch of no route", fromFile, patch("nope", `{}`), 404, `"nope" (the routes are [a])`},
		{"patch not JSON", fromFile, patch("a", `not json`), 400, "not a JSON merge patch"},
		{"patch that does not check", fromFile, patch("a", `{"status": 99}`), 400, "/routes/0/status"},
		{"patch the router refuses", broken, patch("a", `{"status": 201}`), 500, "the router refused"},
		{"reload of a bad file", fromFile, func(o *configOwner) error {
			if err := os.WriteFile(file, []byte(`{"routes": [`), 0o600); err != nil {
				t.Fatal(err)
			}
			return o.Reload(ctx)
		}, 500, "not valid JSON"},
		{"reload of a restart-only change", fromFile, func(o *configOwner) error {
			if err := os.WriteFile(file, []byte(`{"http": {"addr": "127.0.0.1:1"}}`), 0o600); err != nil {
				t.Fatal(err)
			}
			return o.Reload(ctx)
		}, 500, "/http/addr: takes effect only at a restart"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.lastOK.Set(1)
			err := tt.change(tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("error %v, want one that says %q", err, tt.says)
			}
			if got := testutil.ToFloat64(tt.o.lastOK); got != 0 {
				t.Errorf("app_config_last_reload_successful %v, want 0", got)
			}
			if got := statuses(tt.o); len(got) != 1 || got["a"] != 0 {
				t.Errorf("running routes %v, want a as it was", got)
			}
			if got := lifecycleAnswer(err); got != tt.status {
				t.Errorf("answered %d, want %d", got, tt.status)
			}
		})
	}
}

func patch(route, body string) func(*configOwner) error {
	return func(o *configOwner) error {
		_, err := o.PatchRoute(context.Background(), route, []byte(body))
		return err
	}
}

// TestOwnerStopped: once the owner has stopped (the process is shutting down), a change is
// answered at once with service.ErrStopping, never waited on.
func TestOwnerStopped(t *testing.T) {
	cfg := config.Default()
	o := newConfigOwner(cfg, func(config.Config, string, bool) error { return nil }, prometheus.NewRegistry(), log.NewNopLogger())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := o.Run(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := o.PatchRoute(context.Background(), "a", []byte(`{}`))
	if lifecycleAnswer(err) != 503 {
		t.Errorf("a patch after the owner stopped: %v, want 503", err)
	}
}

// lifecycleAnswer is the status the admin handler answers a Lifecycle's err with.
func lifecycleAnswer(err error) int {
	h := transport.NewAdminHandler(transport.AdminOptions{Gatherer: prometheus.NewRegistry(), Lifecycle: failing{err}, LifecycleOn: true})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/-/reload", nil))
	return rec.Code
}

// failing is a Lifecycle whose every change fails with err.
type failing struct{ err error }

func (f failing) Reload(context.Context) error { return f.err }
func (f failing) Config() any                  { return nil }
func (f failing) PatchRoute(context.Context, string, []byte) (any, error) {
	return nil, f.err
}
