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
	"strconv"
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
		case "predict":
			return runPredict(args[1:], stdout, stderr)
		case "load":
			return runLoad(args[1:], stdout, stderr)
		case "serve":
			args = args[1:]
		}
	}
	return serve(args, stdout, stderr)
}

// options are the command-line settings of the server; flags override the config file.
type options struct {
	configFile string
	watch      bool // reload the config file when its content changes
	httpAddr   string
	adminAddr  string
	grpcAddr   string
	version    bool
	// memLimitRatio is the share of the cgroup's memory limit set as the Go runtime's soft limit
	// when GOMEMLIMIT is not set; 0 off (memlimit.go).
	memLimitRatio float64
}

func parseFlags(name string, args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configFile, "config", os.Getenv("ANYROUTE_CONFIG"), "JSON config file (env ANYROUTE_CONFIG); none: embedded defaults")
	fs.BoolVar(&o.watch, "config.watch", true, "reload the config file when its content changes; false: only SIGHUP and POST /-/reload do (for a file edited in steps, or a filesystem without change notification)")
	fs.StringVar(&o.httpAddr, "http.addr", "", "API listen address, overrides http.addr of the config")
	fs.StringVar(&o.adminAddr, "admin.addr", "", "admin listen address, overrides admin.addr of the config")
	fs.StringVar(&o.grpcAddr, "grpc.addr", "", "gRPC listen address, overrides grpc.addr of the config (which is empty, off, by default)")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	ratio := os.Getenv("ANYROUTE_MEMORY_LIMIT_RATIO")
	if ratio == "" {
		ratio = strconv.FormatFloat(defaultMemoryLimitRatio, 'f', -1, 64)
	}
	fs.StringVar(&ratio, "memory.limit-ratio", ratio, "when GOMEMLIMIT is not set, the Go runtime's soft memory limit as this share of the container's cgroup memory limit, if it has one (env ANYROUTE_MEMORY_LIMIT_RATIO); 0: off")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s [flags]\n       %s check-config FILE\n       %s schema\n       %s healthcheck [flags]\n       %s doctor [-kubeconfig F] [-namespace N] [-release R] [-prometheus-url U] [-o json]\n       %s predict [-load FILE] [-f VALUES]... [-o json]\n       %s load [-rate R -duration D | -stages S | -concurrency C -duration D] URL...\n\nflags:\n", name, name, name, name, name, name, name)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if o.memLimitRatio, err = parseMemoryLimitRatio(ratio); err != nil {
		fmt.Fprintln(stderr, err)
		return o, err
	}
	return o, nil
}

// loadConfig applies the file (or the embedded defaults) and then the flag overrides.
func (o options) loadConfig() (config.Config, error) {
	src, err := o.configSource()
	if err != nil {
		return config.Config{}, err
	}
	return src.parse(src.name, src.doc)
}

// configSource reads the config file, or takes "{}" (the embedded defaults) when there is none,
// and says how to read and check it again: the running service keeps it for reloads and route
// patches.
func (o options) configSource() (configSource, error) {
	src := configSource{name: o.configFile, doc: []byte("{}"), parse: o.parseConfig}
	if o.configFile == "" {
		return src, nil
	}
	src.read = func() ([]byte, error) { return config.ReadFile(o.configFile) }
	var err error
	src.doc, err = src.read()
	return src, err
}

// parseConfig checks a config document and applies the flag overrides.
func (o options) parseConfig(name string, doc []byte) (config.Config, error) {
	cfg, err := config.Parse(name, doc)
	if err != nil {
		return cfg, err
	}
	if o.httpAddr != "" {
		cfg.HTTP.Addr = o.httpAddr
	}
	if o.adminAddr != "" {
		cfg.Admin.Addr = o.adminAddr
	}
	if o.grpcAddr != "" {
		cfg.GRPC.Addr = o.grpcAddr
	}
	if o.httpAddr != "" { // checked again with the address it will listen on: a call to it loops
		if ps := cfg.Check(); len(ps) > 0 {
			return cfg, &config.Error{File: name, Problems: ps}
		}
	}
	return cfg, nil
}

func checkConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: anyroute check-config FILE")
		return exitBadUsage
	}
	// The document only: the certificate files http.tls names are read at start (serve), where
	// they are, not where a chart or a CI job checks the config.
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
