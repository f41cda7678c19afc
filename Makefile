# Portier build. `make run` and `make test` work on a fresh Debian machine.
GO       ?= go
BIN      := $(CURDIR)/bin
GOFILES   = $(shell git ls-files '*.go' 2>/dev/null | grep -v '_templ.go$$')
TEST_TIMEOUT ?= 18m

.PHONY: all build run test bench lint deps deps-test generate assets clean

all: build

deps:
	@deploy/install-deps.sh run

deps-test:
	@deploy/install-deps.sh test

## generate: templ components and front-end assets (npm, exact pins)
generate:
	@$(GO) tool templ generate -log-level error -path web >/dev/null
	@$(MAKE) --no-print-directory assets

assets:
	@if [ -f web/package.json ]; then web/build-assets.sh; fi

build: generate
	$(GO) build -o $(BIN)/portier ./cmd/portier
	$(GO) build -o $(BIN)/supervisord github.com/ochinchina/supervisord

run: deps build
	$(BIN)/portier run $(ARGS)

lint:
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod/go.sum are not tidy: run go mod tidy and commit"; exit 1; }
	@git diff --exit-code -- '*_templ.go' || { echo "generated templ code is stale: run make generate and commit"; exit 1; }

test: deps-test build lint
	PATH="$(BIN):$$PATH" $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...
	@# The HLS viewer simulations skip under -race (it slows the simulated
	@# viewers 5-10x); their timing claims are checked here without it. So
	@# does the cluster test (network namespaces and its own Postgres, as root; 1-1.5 min).
	PATH="$(BIN):$$PATH" $(GO) test -count=1 -timeout 10m -run 'TestSim|TestHLSSimulatedViewersOnRealEdges|^TestCluster$$' ./tests/hlssim/ ./tests/e2e/ ./tests/cluster/

bench: deps-test build
	PATH="$(BIN):$$PATH" $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 150m ./tests/bench/ | tee docs/bench-latest.txt

clean:
	rm -rf $(BIN)
