// Command anyroute answers HTTP requests on any method and path, as its route rules say, and
// publishes exact request metrics and traces: a stand-in for any workload in load and autoscaling
// tests.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"github.com/anyroute/anyroute/config"
)

// Set by the build with -ldflags "-X main.version=... -X main.revision=...".
var (
	version  = "dev"
	revision = ""
)

// Exit codes: 2 is the usual code for bad usage, and a bad config is that; 3 tells a shutdown
// whose drain was cut short, with requests still running, from a clean one.
const (
	exitOK       = 0
	exitFailure  = 1
	exitBadUsage = 2
	exitDrainCut = 3
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "check-config":
			return checkConfig(args[1:], stdout, stderr)
		case "schema":
			_, _ = stdout.Write(config.Schema())
			return exitOK
		case "healthcheck":
			return healthcheck(args[1:], stderr)
		case "doctor":
			return runDoctor(args[1:], stdout, stderr)
		case "serve":
			args = args[1:]
		}
	}
	return serve(args, stdout, stderr)
}

// options are the command-line settings of the server; flags override the config file.
type options struct {
	configFile string
	httpAddr   string
	adminAddr  string
	version    bool
}

func parseFlags(name string, args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configFile, "config", os.Getenv("ANYROUTE_CONFIG"), "JSON config file (env ANYROUTE_CONFIG); none: embedded defaults")
	fs.StringVar(&o.httpAddr, "http.addr", "", "API listen address, overrides http.addr of the config")
	fs.StringVar(&o.adminAddr, "admin.addr", "", "admin listen address, overrides admin.addr of the config")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s [flags]\n       %s check-config FILE\n       %s schema\n       %s healthcheck [flags]\n       %s doctor [-kubeconfig F] [-namespace N] [-release R] [-prometheus-url U] [-o json]\n\nflags:\n", name, name, name, name, name)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return o, nil
}

// loadConfig applies the file (or the embedded defaults) and then the flag overrides.
func (o options) loadConfig() (config.Config, error) {
	cfg := config.Default()
	if o.configFile != "" {
		var err error
		if cfg, err = config.Load(o.configFile); err != nil {
			return cfg, err
		}
	}
	if o.httpAddr != "" {
		cfg.HTTP.Addr = o.httpAddr
	}
	if o.adminAddr != "" {
		cfg.Admin.Addr = o.adminAddr
	}
	return cfg, nil
}

func checkConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: anyroute check-config FILE")
		return exitBadUsage
	}
	if _, err := config.Load(args[0]); err != nil {
		printConfigError(stderr, err)
		return exitBadUsage
	}
	fmt.Fprintf(stdout, "%s: valid\n", args[0])
	return exitOK
}

// printConfigError writes one line per problem, "FILE: POINTER: REASON", so that editors and grep
// can jump to each.
func printConfigError(w io.Writer, err error) {
	var ce *config.Error
	if !errors.As(err, &ce) {
		fmt.Fprintln(w, err)
		return
	}
	for _, p := range ce.Problems {
		fmt.Fprintf(w, "%s: %s\n", ce.File, p)
	}
}

// healthcheck asks the admin listener's /healthz: the container image is scratch, with no shell or
// curl for a HEALTHCHECK to use.
func healthcheck(args []string, stderr io.Writer) int {
	o, err := parseFlags("anyroute healthcheck", args, stderr)
	if err != nil {
		return exitBadUsage
	}
	cfg, err := o.loadConfig()
	if err != nil {
		printConfigError(stderr, err)
		return exitBadUsage
	}
	host, port, err := net.SplitHostPort(cfg.Admin.Addr)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: admin address %q: %v\n", cfg.Admin.Addr, err)
		return exitBadUsage
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	client := http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort(host, port) + "/healthz")
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return exitFailure
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "healthcheck: /healthz answered %s\n", resp.Status)
		return exitFailure
	}
	return exitOK
}

// buildVersion returns the version and revision, falling back to what the Go toolchain stamped.
func buildVersion() (string, string) {
	rev := revision
	if rev == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					rev = s.Value
				}
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	return version, rev
}
