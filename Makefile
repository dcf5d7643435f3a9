# anyroute. `make run` and `make test` do all set-up on a fresh machine: tools are built from Go
# modules into .tools/ (git-ignored); system packages are installed only when missing.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

GO        ?= go
# go.mod's toolchain line names the patched Go release the project builds with; some machines
# default to GOTOOLCHAIN=local (in GOROOT/go.env), which would ignore it. auto fetches that release
# once through the module proxy. An explicit GOTOOLCHAIN in the environment still wins.
export GOTOOLCHAIN ?= auto
TOOLS_BIN := $(CURDIR)/.tools/bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X main.version=$(VERSION) -X main.revision=$(REVISION)
ARGS      ?=

.PHONY: build
build: ## build bin/anyroute
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/anyroute ./cmd/anyroute

.PHONY: run
run: build ## run the service on embedded defaults (:8080 API, :8081 admin); ARGS adds flags
	./bin/anyroute $(ARGS)

# preflight first, so a machine that lacks what it cannot get stops before any long build; the e2e
# demo last (e2e-run: the e2e without its own preflight, which make test's has covered). The suites
# run in a sub-make so that -j cannot start them before the preflight, and are handed the
# preflight's NO_REGISTRY so the registry is probed once. The e2e's tools are built in the
# background (e2e-tools-bg) from the start, beside the tools the suites ask for (test-deps) and
# then the suites.
.PHONY: test
test: preflight ## every test of the project, integration included; the e2e demo last
	@$(MAKE) --no-print-directory e2e-tools-bg
	@$(MAKE) --no-print-directory test-deps
	@$(MAKE) --no-print-directory test-unit test-integration fuzz NO_REGISTRY=$(NO_REGISTRY)
	@$(MAKE) --no-print-directory e2e-run NO_REGISTRY=$(NO_REGISTRY)

# On a fresh machine the e2e's tools are a cold build of Kubernetes, KEDA, metrics-server and the
# rest (an hour and more of compiling on 2 cores), and the suites before the e2e spend much of their
# time waiting on real servers: built beside them, the build costs make test a part of that hour
# instead of all of it. The e2e's scenarios each build or wait for their own tools (scripts/tools.sh
# has a lock per tool); the linters' builds and vulncheck's database (its script has its own lock)
# come last, for .ci/run's make lint, and then a first run of the Go linters (lint-go), which
# fills their caches (go vet's in the Go build cache, golangci-lint's own) while the e2e runs
# (cold, it ended during the third scenario), so that make lint after make test reads them instead
# of analysing every package again. No suite waits on this build: each tool a suite asks
# scripts/tools.sh for is built by test-deps, which starts beside it (a tool both ask for is built
# once, under its lock), and KEDA's CRDs, the other one, are read from the module cache without a
# lock. At the lowest priority (nice 19), the build takes only the CPU test-deps and the suites
# leave: those run as on a quiet machine, and so do the e2e scenarios that run beside KEDA's build;
# while test-deps downloads modules, this build compiles.
.PHONY: e2e-tools-bg
e2e-tools-bg:
	@mkdir -p .build
	@nohup nice -n 19 bash -c 'scripts/tools.sh $(E2E_TOOLS) $(LINT_TOOLS) && scripts/vulndb.sh && \
	  $(MAKE) --no-print-directory lint-go' >.build/e2e-tools.log 2>&1 </dev/null &
	@echo "building the e2e's tools in the background: .build/e2e-tools.log"

# node-preflight before the packages, so that not root, no Docker or a kernel without what the node
# needs is the one line, not a failed apt-get; no_registry (which asks Docker) after both.
.PHONY: preflight
preflight: node-preflight ## what make test needs and cannot build: root, Docker, the node's kernel and cgroups, Debian packages (installed when missing)
	scripts/preflight.sh packages $(if $(no_registry),debootstrap)

.PHONY: node-preflight
node-preflight: # what the real node needs and cannot get by itself (make e2e, make cluster, make test)
	@scripts/preflight.sh node

# Each target's budget is a count of executions, about 10 s of fuzzing on an idle 2-core machine,
# not a duration: Go 1.26's coordinator can fail a duration-bounded run with a bare "context
# deadline exceeded" when the time runs out while a worker is mid-execution (go.dev/issue/75804,
# fixed in Go 1.27; it failed a make test here), and a count has no deadline. FUZZTIME, any
# -fuzztime value, replaces every target's (a longer hunt: make fuzz FUZZTIME=10m).
FUZZTIME ?=
fuzztime = $(or $(FUZZTIME),$(1))

.PHONY: fuzz
fuzz: ## a short run of every fuzz target (about 10 s each; a longer hunt: make fuzz FUZZTIME=10m)
	$(GO) test -run '^$$' -fuzz '^FuzzMatch$$' -fuzztime $(call fuzztime,300000x) ./service/
	$(GO) test -run '^$$' -fuzz '^FuzzLatencyBound$$' -fuzztime $(call fuzztime,50000x) ./service/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(call fuzztime,150000x) ./config/
	$(GO) test -run '^$$' -fuzz '^FuzzAcceptedConfigsAnswerInTime$$' -fuzztime $(call fuzztime,10000x) ./config/
	$(GO) test -run '^$$' -fuzz '^FuzzTraceHeaders$$' -fuzztime $(call fuzztime,15000x) ./instrumenting/tracing/jaeger/
	$(GO) test -run '^$$' -fuzz '^FuzzTraceHeaders$$' -fuzztime $(call fuzztime,8000x) ./instrumenting/tracing/zipkin/
	$(GO) test -run '^$$' -fuzz '^FuzzTraceHeaders$$' -fuzztime $(call fuzztime,15000x) ./instrumenting/tracing/otlp/

.PHONY: test-deps
test-deps: ## install what the tests run for real: Prometheus, wrk (Debian), the pinned tools (helm, Jaeger, fortio)
	scripts/deps.sh prometheus promtool wrk
	@# Jaeger beside the others: cold, much of each build is downloading and linking, which leave
	@# a core idle (a lock per tool lets two runs build at once).
	scripts/tools.sh jaeger & jaeger=$$!; scripts/tools.sh helm fortio; wait $$jaeger

# The tests under test/ are a module of their own (test/go.mod, so that testcontainers-go and the
# other test-only modules stay out of the service's go.mod): `go test ./...` at the root does not
# descend into it, so every suite of test/ runs from there (`cd test && ...`, $(TEST_GO)).
TEST_GO := cd test && $(GO)

# `go test ./...` alone needs only Go; the tag external adds the tests that also run Prometheus,
# promtool, Jaeger, helm and wrk (they fail, not skip, when one is missing). test/ is one package of
# real-binary tests, about 8 minutes on an idle 2-core machine: go test's default 10-minute timeout
# would fail it on a busy one, so both runs state theirs.
.PHONY: test-unit
test-unit: test-deps ## unit tests, wiring tests and real-binary tests (real Prometheus, Jaeger, helm too), with the race detector
	$(GO) test -race -count=1 -timeout 20m -tags external ./...
	$(TEST_GO) test -race -count=1 -timeout 30m -tags external ./...

# The autoscaling demo on a real single node (scripts/node.sh: control plane, containerd, kubelet,
# kube-proxy, CoreDNS; test/e2e, docs/autoscaling.md), the chart's pods running as containers of
# the images make images builds, with prometheus-adapter and with KEDA, each followed by its
# deliberate breakages, made live, that anyroute doctor must name; and a CPU-only HPA on
# metrics-server (scripts/node.sh metrics-server) following anyroute predict's timeline. Needs
# root (mounts, cgroups, the pods' bridge); the tools build once (docs/autoscaling.md, "A real
# node", has the cold times).
NODE_TOOLS := etcd kube-apiserver kube-controller-manager kubectl kube-scheduler kube-proxy kubelet \
              containerd cni-plugins crictl coredns
# What every e2e scenario needs (e2e-run builds or waits for these); the CPU and KEDA scenarios' own
# tools, metrics-server and KEDA's, are built in that order behind them, and each of those scenarios
# builds or waits for its own at its start (kit.ProjectTool): built while the scenarios before them
# run, they do not hold up the e2e's start.
E2E_RUN_TOOLS := $(NODE_TOOLS) prometheus prometheus-adapter helm
E2E_TOOLS := $(E2E_RUN_TOOLS) metrics-server keda-operator keda-adapter
NODE_DEPS := runc ip iptables nft openssl curl

# e2e and cluster check first (node-preflight, then the node's packages), and build in a sub-make,
# so that a machine the node cannot run on stops with one line before the images and the tools.
.PHONY: e2e
e2e: node-preflight ## the chart's HPA (prometheus-adapter), KEDA and a CPU HPA (metrics-server) scaling out under load and back in on a real node, anyroute doctor naming each breakage
	scripts/deps.sh $(NODE_DEPS)
	@$(MAKE) --no-print-directory e2e-run

.PHONY: e2e-run
e2e-run: images # make e2e after its preflight (and the node's packages)
	@# The test binary compiles (cold, client-go and the rest: minutes) while its tools are built.
	$(TEST_GO) test -tags e2e -c -o /dev/null ./e2e/ & compile=$$!; scripts/tools.sh $(E2E_RUN_TOOLS); wait $$compile
	$(TEST_GO) test -tags e2e -count=1 -v -timeout 60m ./e2e/

# A newcomer's cluster: the same node the e2e runs, left up, with the chart's images imported, to
# try the README's Kubernetes section (KUBECONFIG=.node/kubeconfig); make cluster-down removes it.
.PHONY: cluster
cluster: node-preflight ## a real single-node Kubernetes on this machine (scripts/node.sh up), the images imported; KUBECONFIG=.node/kubeconfig
	scripts/deps.sh $(NODE_DEPS)
	@$(MAKE) --no-print-directory cluster-up

.PHONY: cluster-up
cluster-up: images # make cluster after its preflight
	scripts/tools.sh $(NODE_TOOLS) helm
	scripts/node.sh up
	scripts/node.sh import anyroute:latest anyroute-siege:latest
	@echo "cluster up: export KUBECONFIG=$(CURDIR)/.node/kubeconfig; make cluster-down removes it"

.PHONY: cluster-down
cluster-down: ## stop the cluster of make cluster: processes, pods, mounts, cgroups, rules, bridge (its state stays in .node)
	scripts/node.sh down

# Containers. The normal path is a plain docker build of deployments/docker/Dockerfile with public
# base images. Where no registry answers, deployments/no-registry/images.sh builds every image from
# local stand-ins instead, reusing each while its inputs are unchanged. One switch picks the path:
# NO_REGISTRY=1 the no-registry path, NO_REGISTRY=0 the normal one; unset, make sets it once per run,
# the first time an image target needs it: 1 when a pull of the Go image fails.
ifndef NO_REGISTRY
NO_REGISTRY = $(eval NO_REGISTRY := $(shell deployments/no-registry/images.sh probe))$(NO_REGISTRY)
endif
no_registry  = $(filter 1,$(NO_REGISTRY))
# ARCH=arm64 (or amd64) builds the image for that architecture, cross-compiled on this machine, and
# names it anyroute:latest-ARCH unless IMAGE says otherwise; unset, the machine's own.
ARCH       ?=
NO_REGISTRY_SH = VERSION=$(VERSION) REVISION=$(REVISION) ARCH=$(ARCH) deployments/no-registry/images.sh
IMAGE      ?= anyroute:latest$(if $(ARCH),-$(ARCH))
# The images the stack and the container tests run on the normal path (docker-compose.yml's
# defaults); $(IMAGES_ENV) names the ones this machine has, for compose and the tests.
SIEGE_IMAGE      ?= anyroute-siege:latest
PROMETHEUS_IMAGE ?= prom/prometheus:v2.53.0
JAEGER_IMAGE     ?= jaegertracing/jaeger:2.13.0
IMAGES_ENV := .build/images.env
COMPOSE     = docker-compose $(if $(wildcard $(IMAGES_ENV)),--env-file $(IMAGES_ENV)) -p anyroute \
              -f deployments/compose/docker-compose.yml

# Another architecture on the normal path needs BuildKit, which sets the Dockerfile's platform
# arguments from --platform (the classic builder's image would say amd64: NO_REGISTRY=1 fixes that).
define normal_image
docker build -f deployments/docker/Dockerfile $(if $(ARCH),--platform linux/$(ARCH)) --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) -t $(IMAGE) .
endef

define normal_stack
docker build -q -f deployments/docker/siege.Dockerfile -t $(SIEGE_IMAGE) deployments/docker
docker image inspect $(PROMETHEUS_IMAGE) >/dev/null 2>&1 || docker pull $(PROMETHEUS_IMAGE)
docker image inspect $(JAEGER_IMAGE) >/dev/null 2>&1 || docker pull $(JAEGER_IMAGE)
@mkdir -p $(dir $(IMAGES_ENV))
@printf '%s\n' '# written by make images (normal path)' SIEGE_IMAGE=$(SIEGE_IMAGE) \
  PROMETHEUS_IMAGE=$(PROMETHEUS_IMAGE) JAEGER_IMAGE=$(JAEGER_IMAGE) >$(IMAGES_ENV)
endef

.PHONY: docker-check
docker-check: # fail, not skip, without Docker
	@scripts/preflight.sh docker

.PHONY: image
image: docker-check ## build the anyroute image IMAGE (anyroute:latest): docker build, or the no-registry path; ARCH=arm64 for arm64
	$(if $(no_registry),$(NO_REGISTRY_SH) anyroute $(IMAGE),$(normal_image))

.PHONY: images
images: image ## every image the stack and the container tests need, named in .build/images.env
	$(if $(no_registry),$(NO_REGISTRY_SH) stack,$(normal_stack))

# GRAFANA=1 adds the compose file's grafana service (profile grafana; it pulls grafana/grafana, so
# only where a registry answers). LOAD_TOOL picks the load generator: anyroute (anyroute load) or
# siege; the other is scaled to 0.
GRAFANA ?=
LOAD_TOOL ?= anyroute

.PHONY: up
up: images ## start the local stack: anyroute, Prometheus, Jaeger, the load (LOAD_TOOL=anyroute or siege); GRAFANA=1 adds Grafana (docs/deployment.md: Run the stack)
	@case "$(LOAD_TOOL)" in anyroute|siege) ;; *) echo "LOAD_TOOL=$(LOAD_TOOL): want anyroute or siege" >&2; exit 2;; esac
	ANYROUTE_IMAGE=$(IMAGE) $(COMPOSE) $(if $(GRAFANA),--profile grafana) up -d --scale $(if $(filter siege,$(LOAD_TOOL)),load,siege)=0
	@echo "frontend http://127.0.0.1:$${ANYROUTE_HTTP_PORT:-18080}  Prometheus http://127.0.0.1:$${PROMETHEUS_PORT:-19090}  Jaeger http://127.0.0.1:$${JAEGER_UI_PORT:-16686}$(if $(GRAFANA),  Grafana http://127.0.0.1:$${GRAFANA_PORT:-13000})"

# With the profile on, so that a Grafana started by GRAFANA=1 goes too (down pulls nothing).
.PHONY: down
down: docker-check ## stop the local stack (Grafana included) and remove its volumes
	$(COMPOSE) --profile grafana down -v

# The arm64 image the container tests check (TestImageArm64), beside IMAGE.
ARM64_IMAGE ?= anyroute:latest-arm64

# testcontainers: no reaper (its image cannot be pulled; the tests remove what they start), and
# published ports looked up on 127.0.0.1 (the default guess is wrong inside a container).
.PHONY: test-integration
test-integration: export TESTCONTAINERS_RYUK_DISABLED ?= true
test-integration: export TESTCONTAINERS_HOST_OVERRIDE ?= 127.0.0.1
test-integration: images ## the images (amd64 and arm64), then anyroute with Prometheus and Jaeger in containers and as the compose stack
	@$(MAKE) --no-print-directory image ARCH=arm64 IMAGE=$(ARM64_IMAGE) NO_REGISTRY=$(NO_REGISTRY)
	set -a; source $(IMAGES_ENV); set +a; cd test && ANYROUTE_IMAGE=$(IMAGE) ANYROUTE_ARM64_IMAGE=$(ARM64_IMAGE) \
	  $(GO) test -tags integration -count=1 -v -timeout 20m ./containers/

SOAK_DURATION ?= 10m

.PHONY: soak
soak: ## a steady mixed load for SOAK_DURATION (not part of make test): errors, memory, goroutines, counts
	cd test && SOAK_DURATION=$(SOAK_DURATION) $(GO) test -tags soak -count=1 -v -run '^TestSoak$$' -timeout 30m .

# The load benchmark, bench/driver: every case measured in BENCH_PAIRS pairs of BENCH_WINDOW windows
# (the case's and its baseline's back to back), the headline server CPU per request ÷ the baseline's
# with its 95% interval. BENCH_CASES: all, load (every case but the scrape storm), storm, or case ids
# (bare none jaeger-prob jaeger-const otlp-const podinfo go-httpbin fortio bare-call anyroute-call
# bare-grpc grpc grpc-fortio bare-h2c h2c storm storm-baseline; a case's baseline is added). The gRPC
# and h2c cases are driven by bench/rpcload: BENCH_CONNECTIONS calls in flight over
# BENCH_H2_CONNECTIONS HTTP/2 connections. A run of groups rewrites BENCH_DOC's sections and
# the README's performance paragraph; a run of named cases prints only unless BENCH_DOC is set
# (BENCH_DOC= prints only). The scrape storm splits its pairs over BENCH_SCRAPE_ROUNDS servers and
# compares this tree with BENCH_BASELINE_REF (empty: none). The run uses 80 loopback ports from
# BENCH_PORT_BASE.
BENCH_CASES            ?=
BENCH_PAIRS            ?= 20
BENCH_WINDOW           ?= 2s
BENCH_WARMUP           ?= 3s
BENCH_CONNECTIONS      ?= 64
BENCH_H2_CONNECTIONS   ?= 4
BENCH_IDLE_CONNECTIONS ?= 5000
BENCH_SCRAPE_ROUNDS    ?= 3
BENCH_BASELINE_REF     ?= 3c32b1d
BENCH_PORT_BASE        ?= 18100
bench_driver = $(GO) run ./bench/driver -go '$(GO)' -pairs $(BENCH_PAIRS) -window $(BENCH_WINDOW) \
	-warmup $(BENCH_WARMUP) -connections $(BENCH_CONNECTIONS) -h2-connections $(BENCH_H2_CONNECTIONS) \
	-idle-connections $(BENCH_IDLE_CONNECTIONS) \
	-scrape-rounds $(BENCH_SCRAPE_ROUNDS) -baseline-ref '$(BENCH_BASELINE_REF)' -port-base $(BENCH_PORT_BASE) \
	$(if $(filter undefined,$(origin BENCH_DOC)),,-doc '$(BENCH_DOC)')

.PHONY: bench
bench: bench-metrics ## micro-benchmarks, then the load run (tracing, peers, upstream call, gRPC and h2c, memory) and the scrape storm (writes docs/benchmarks.md)
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./bench/bare/ ./cmd/anyroute/
	$(bench_driver) -cases '$(or $(BENCH_CASES),all)'

.PHONY: bench-load
bench-load: ## the load run alone: anyroute, its peers and bare net/http side by side (BENCH_PAIRS, BENCH_WINDOW, BENCH_CASES)
	$(bench_driver) -cases '$(or $(BENCH_CASES),load)'

.PHONY: bench-scrapes
bench-scrapes: ## the scrape-storm run alone: the API's CPU per request quiet ÷ under 16 scrapes a second
	$(bench_driver) -cases '$(or $(BENCH_CASES),storm)'

.PHONY: bench-metrics
bench-metrics: ## micro-benchmarks of the metrics pipeline
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./instrumenting/metrics/

# The release: GoReleaser (.goreleaser.yaml) in snapshot mode, so it needs no tag and no network:
# archives for linux, darwin and windows on amd64 and arm64, checksums.txt and a CycloneDX SBOM per
# binary in dist/, stamped with VERSION and REVISION as make build stamps them. SIGN=KEY adds
# dist/checksums.txt.sig, signed with that cosign key (COSIGN_PASSWORD its password) and uploaded
# nowhere (no transparency log).
SIGN ?=

.PHONY: release
release: ## the release archives, checksums.txt and SBOMs in dist/ (GoReleaser snapshot); SIGN=cosign.key signs checksums.txt
	scripts/tools.sh goreleaser cyclonedx-gomod $(if $(SIGN),cosign)
	VERSION=$(VERSION) REVISION=$(REVISION) PATH="$(TOOLS_BIN):$$PATH" \
	  $(TOOLS_BIN)/goreleaser release --snapshot --clean
	$(if $(SIGN),$(TOOLS_BIN)/cosign sign-blob --yes --tlog-upload=false --key $(SIGN) \
	  --output-signature dist/checksums.txt.sig dist/checksums.txt)

# The release test (test/release): make release with a version and a cosign key of its own, then
# every archive, checksum, SBOM and the signature, and the linux binaries run: arm64 under Debian's
# qemu-user-static. Not part of make test (see docs/deployment.md for its cost).
.PHONY: test-release
test-release: ## make release, checked: archives, checksums, SBOMs, signature; the amd64 binary and the arm64 one under qemu
	scripts/deps.sh qemu-aarch64-static
	scripts/tools.sh goreleaser cyclonedx-gomod cosign
	$(TEST_GO) test -tags release -count=1 -v -timeout 30m ./release/

.PHONY: tools
tools: ## build the pinned tools into .tools/bin
	scripts/tools.sh golangci-lint govulncheck helm jaeger

# Every build tag, so the external, container, e2e, soak and release tests are vetted too.
LINT_TAGS := integration,e2e,soak,external,release
# The linters' own builds: make test builds them last in its background (e2e-tools-bg), so that
# .ci/run's make lint after it starts linting at once.
LINT_TOOLS := golangci-lint govulncheck

.PHONY: lint
lint: shellcheck helm-lint vulncheck lint-go ## gofmt, go vet, golangci-lint; shellcheck, helm-lint and vulncheck first

# The Go linters of make lint. golangci-lint runs one at a time (.golangci.yml: a second run waits
# for the first), as make test's background may still be running this when make lint starts.
.PHONY: lint-go
lint-go:
	@unformatted=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
	  if [[ -n "$$unformatted" ]]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet -tags $(LINT_TAGS) ./...
	$(TEST_GO) vet -tags $(LINT_TAGS) ./...
	scripts/tools.sh golangci-lint
	$(TOOLS_BIN)/golangci-lint run --build-tags $(LINT_TAGS) ./...
	cd test && $(TOOLS_BIN)/golangci-lint run --build-tags $(LINT_TAGS) ./...

# Every shell script, tracked or new: *.sh, and any file whose first line names a shell (.ci/run).
.PHONY: shellcheck
shellcheck: ## shellcheck every shell script (Debian's shellcheck, installed when missing)
	scripts/deps.sh shellcheck
	@files=$$({ git ls-files -co --exclude-standard '*.sh'; \
	    git grep -InE --untracked '^#!.*\b(ba|da|k)?sh\b' | sed -n 's/:1:.*//p'; } | sort -u \
	    | while read -r f; do [[ ! -f $$f ]] || echo "$$f"; done); \
	  shellcheck $$files && echo "shellcheck: $$(wc -w <<<"$$files") scripts clean"

# govulncheck against a local database (vuln.go.dev is unreachable) that scripts/vulndb.sh builds into
# .tools/vulndb from a pinned golang.org/x/vulndb module; exits 3 when reachable vulnerabilities are found.
.PHONY: vulncheck
vulncheck: ## govulncheck ./... against the pinned local vulnerability database, the service's module and the tests'
	scripts/tools.sh govulncheck
	scripts/vulndb.sh
	$(TOOLS_BIN)/govulncheck -db file://$(CURDIR)/.tools/vulndb ./...
	cd test && $(TOOLS_BIN)/govulncheck -db file://$(CURDIR)/.tools/vulndb ./...

# helm keeps its state under .tools/helm. It renders for the Kubernetes its own build names (1.37,
# scripts/tools.sh), the release the e2e control plane runs.
HELM         := HELM_CACHE_HOME=$(CURDIR)/.tools/helm/cache HELM_CONFIG_HOME=$(CURDIR)/.tools/helm/config \
                HELM_DATA_HOME=$(CURDIR)/.tools/helm/data $(TOOLS_BIN)/helm
CHART        := deployments/helm/anyroute
DEMO_VALUES  := deployments/helm/values-demo.yaml

# The dashboard ConfigMap and the PrometheusRule are off by default: lint them on too.
MONITORING_VALUES := --set dashboards.enabled=true,prometheusRule.enabled=true

.PHONY: helm-lint
helm-lint: ## helm lint --strict the chart and render it, with default and with demo values, with KEDA, and with the dashboard and alerts on
	scripts/tools.sh helm
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) -f $(DEMO_VALUES)
	$(HELM) lint --strict $(CHART) $(MONITORING_VALUES)
	$(HELM) lint --strict $(CHART) -f $(DEMO_VALUES) --set hpa.enabled=false,keda.enabled=true
	$(HELM) template anyroute $(CHART) >/dev/null
	$(HELM) template anyroute $(CHART) -f $(DEMO_VALUES) >/dev/null
	$(HELM) template anyroute $(CHART) -f $(DEMO_VALUES) $(MONITORING_VALUES) >/dev/null
	@echo "helm-lint: chart lints and renders with default and demo values, with KEDA, and with the dashboard and alerts on"

# The alerts' promtool unit tests alone; make test runs them (and against the chart's rendering)
# in the external tests (test/alerts_test.go). The predicted cases are anyroute predict's of the
# committed incident drill (deployments/predict; make docs writes them again).
ALERTS := deployments/compose/prometheus-alerts

.PHONY: alerts
alerts: ## promtool check and unit-test the alert rules (deployments/compose/prometheus-alerts*.yml), the predicted cases too
	scripts/deps.sh promtool
	promtool check rules $(ALERTS).yml
	promtool test rules $(ALERTS)_test.yml $(ALERTS)_predicted_test.yml

# The reference docs generated from the code: docs/configuration.md from the embedded schema, the
# table of docs/metrics.md from the registry the service serves, the example prediction (its
# promtool cases, its SVG, the README's block) from deployments/predict. go test ./... fails while
# any is stale; this rewrites them. After a change of config/schema.json, the chart's copy of it too.
.PHONY: docs
docs: ## rewrite the generated docs (configuration, metrics, the example prediction) and the chart's copy of the config schema
	$(GO) test -count=1 -run '^TestConfigurationDoc$$' ./config/ -update-docs
	$(GO) test -count=1 -run '^TestMetricsDoc$$' ./cmd/anyroute/ -update-docs
	$(GO) test -count=1 -run '^TestExampleIsFresh$$' ./instrumenting/predict/ -update-example
	cd test && $(GO) test -count=1 -run '^TestHelmValuesSchemaEmbedsConfigSchema$$' . -update-helm-schema

.PHONY: clean
clean: ## remove build outputs (not the tools)
	rm -rf bin .build dist

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-17s %s\n", $$1, $$2}'
