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

.PHONY: test
test: test-unit test-integration fuzz ## every test of the project, integration included; the e2e demo last
	@$(MAKE) --no-print-directory e2e

FUZZTIME ?= 10s

.PHONY: fuzz
fuzz: ## a short run of every fuzz target (FUZZTIME each; a longer hunt: make fuzz FUZZTIME=10m)
	$(GO) test -run '^$$' -fuzz '^FuzzMatch$$' -fuzztime $(FUZZTIME) ./service/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./config/
	$(GO) test -run '^$$' -fuzz '^FuzzTraceHeaders$$' -fuzztime $(FUZZTIME) ./instrumenting/tracing/jaeger/
	$(GO) test -run '^$$' -fuzz '^FuzzTraceHeaders$$' -fuzztime $(FUZZTIME) ./instrumenting/tracing/zipkin/
	$(GO) test -run '^$$' -fuzz '^FuzzTraceHeaders$$' -fuzztime $(FUZZTIME) ./instrumenting/tracing/otlp/

.PHONY: test-deps
test-deps: ## install what the tests run for real: Prometheus, wrk (Debian), the pinned tools (helm, Jaeger)
	scripts/deps.sh prometheus promtool wrk
	scripts/tools.sh helm jaeger

.PHONY: test-unit
test-unit: test-deps ## unit tests, wiring tests and real-binary tests (real Prometheus too), with the race detector
	$(GO) test -race -count=1 ./...

# The autoscaling demo on a control plane on loopback (test/e2e, docs/autoscaling.md). Needs root
# for a dummy network interface; the control-plane tools build once (about 15 minutes cold).
E2E_TOOLS := etcd kube-apiserver kube-controller-manager kubectl prometheus-adapter helm

.PHONY: e2e
e2e: ## the chart's HPA scaling out under siege and back in, on real Kubernetes, Prometheus and prometheus-adapter
	scripts/deps.sh prometheus siege ip
	scripts/tools.sh $(E2E_TOOLS)
	$(GO) test -tags e2e -count=1 -v -timeout 15m ./test/e2e/

# Containers. No registry needs to answer: local-images.sh builds stand-ins for the base images a
# pull cannot get and names them in $(IMAGES_ENV); image.sh skips the build while the image's label
# holds the hash of its current inputs.
IMAGE      ?= anyroute:latest
IMAGES_ENV := .build/images.env
COMPOSE     = docker-compose $(if $(wildcard $(IMAGES_ENV)),--env-file $(IMAGES_ENV)) -p anyroute \
              -f deployments/compose/docker-compose.yml

.PHONY: docker-check
docker-check: # fail, not skip, without Docker
	@command -v docker >/dev/null || { echo "Docker is required and there is no docker command (Debian: apt-get install docker.io docker-compose)" >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "Docker is required and no daemon answers at $${DOCKER_HOST:-unix:///var/run/docker.sock}: start dockerd, or set DOCKER_HOST" >&2; exit 1; }

.PHONY: image
image: docker-check ## build the anyroute image $(IMAGE) (reused while its build inputs are unchanged)
	VERSION=$(VERSION) REVISION=$(REVISION) deployments/docker/image.sh $(IMAGE)

.PHONY: images
images: image ## every image the stack and the container tests need (local stand-ins where a pull fails)
	deployments/docker/local-images.sh all >/dev/null

.PHONY: up
up: images ## start the local stack: anyroute, Prometheus, Jaeger, siege (README: Run the stack)
	ANYROUTE_IMAGE=$(IMAGE) $(COMPOSE) up -d
	@echo "anyroute http://127.0.0.1:$${ANYROUTE_HTTP_PORT:-18080}  Prometheus http://127.0.0.1:$${PROMETHEUS_PORT:-19090}  Jaeger http://127.0.0.1:$${JAEGER_UI_PORT:-16686}"

.PHONY: down
down: docker-check ## stop the local stack and remove its volumes
	$(COMPOSE) down -v

# testcontainers: no reaper (its image cannot be pulled; the tests remove what they start), and
# published ports looked up on 127.0.0.1 (the default guess is wrong inside a container).
.PHONY: test-integration
test-integration: export TESTCONTAINERS_RYUK_DISABLED ?= true
test-integration: export TESTCONTAINERS_HOST_OVERRIDE ?= 127.0.0.1
test-integration: images ## the image, then anyroute with Prometheus and Jaeger in containers and as the compose stack
	set -a; source $(IMAGES_ENV); set +a; ANYROUTE_IMAGE=$(IMAGE) \
	  $(GO) test -tags integration -count=1 -v -timeout 20m ./test/containers/

SOAK_DURATION ?= 10m

.PHONY: soak
soak: ## a steady mixed load for SOAK_DURATION (not part of make test): errors, memory, goroutines, counts
	SOAK_DURATION=$(SOAK_DURATION) $(GO) test -tags soak -count=1 -v -run '^TestSoak$$' -timeout 30m ./test/

.PHONY: bench
bench: bench-metrics ## micro-benchmarks, the load run against a bare server, the scrape-storm run (writes docs/benchmarks.md)
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./bench/bare/ ./cmd/anyroute/
	scripts/bench.sh
	scripts/bench-scrapes.sh

.PHONY: bench-metrics
bench-metrics: ## micro-benchmarks of the metrics pipeline
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./instrumenting/metrics/

.PHONY: tools
tools: ## build the pinned tools into .tools/bin
	scripts/tools.sh golangci-lint govulncheck helm jaeger

# Every build tag, so the container, e2e and soak tests are vetted too.
LINT_TAGS := integration,e2e,soak

.PHONY: lint
lint: helm-lint vulncheck ## gofmt, go vet, golangci-lint; helm-lint and vulncheck first
	@unformatted=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
	  if [[ -n "$$unformatted" ]]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet -tags $(LINT_TAGS) ./...
	scripts/tools.sh golangci-lint
	$(TOOLS_BIN)/golangci-lint run --build-tags $(LINT_TAGS) ./...

# govulncheck against a local database (vuln.go.dev is unreachable) that scripts/vulndb.sh builds into
# .tools/vulndb from a pinned golang.org/x/vulndb module; exits 3 when reachable vulnerabilities are found.
.PHONY: vulncheck
vulncheck: ## govulncheck ./... against the pinned local vulnerability database
	scripts/tools.sh govulncheck
	scripts/vulndb.sh
	$(TOOLS_BIN)/govulncheck -db file://$(CURDIR)/.tools/vulndb ./...

# helm keeps its state under .tools/helm; --kube-version: the control plane the e2e test runs (helm
# built from its module otherwise assumes 1.20, below the chart's kubeVersion).
HELM         := HELM_CACHE_HOME=$(CURDIR)/.tools/helm/cache HELM_CONFIG_HOME=$(CURDIR)/.tools/helm/config \
                HELM_DATA_HOME=$(CURDIR)/.tools/helm/data $(TOOLS_BIN)/helm
HELM_KUBE    ?= 1.37.2
CHART        := deployments/helm/anyroute
DEMO_VALUES  := deployments/helm/values-demo.yaml

.PHONY: helm-lint
helm-lint: ## helm lint --strict the chart and render it, with default and with demo values
	scripts/tools.sh helm
	$(HELM) lint --strict --kube-version $(HELM_KUBE) $(CHART)
	$(HELM) lint --strict --kube-version $(HELM_KUBE) $(CHART) -f $(DEMO_VALUES)
	$(HELM) template anyroute $(CHART) --kube-version $(HELM_KUBE) >/dev/null
	$(HELM) template anyroute $(CHART) --kube-version $(HELM_KUBE) -f $(DEMO_VALUES) >/dev/null
	@echo "helm-lint: chart lints and renders with default and demo values"

.PHONY: clean
clean: ## remove build outputs (not the tools)
	rm -rf bin .build

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'
