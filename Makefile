# anyroute. `make run` and `make test` do all set-up on a fresh machine: tools are built from Go
# modules into .tools/ (git-ignored); system packages are installed only when missing.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

GO        ?= go
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
test: test-unit ## every test of the project, integration included

.PHONY: test-deps
test-deps: ## install what the tests run for real: Prometheus (Debian), the pinned tools
	scripts/deps.sh prometheus promtool

.PHONY: test-unit
test-unit: test-deps ## unit tests, wiring tests and real-binary tests (real Prometheus too), with the race detector
	$(GO) test -race -count=1 ./...

.PHONY: bench-metrics
bench-metrics: ## micro-benchmarks of the metrics pipeline
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./instrumenting/

.PHONY: tools
tools: ## build the pinned tools into .tools/bin
	scripts/tools.sh golangci-lint govulncheck helm jaeger

.PHONY: lint
lint: ## gofmt, go vet, golangci-lint
	@unformatted=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
	  if [[ -n "$$unformatted" ]]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	scripts/tools.sh golangci-lint
	$(TOOLS_BIN)/golangci-lint run ./...

.PHONY: clean
clean: ## remove build outputs (not the tools)
	rm -rf bin .build

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'
