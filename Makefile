# secrets-prefetch — build, test, demo.
# `make demo` shows the extension at work under AWS's Runtime Interface
# Emulator with an emulated AWS; `make test` runs every test (CI runs it).

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Evaluate the version once per make run, so a layer's zip name and the
# version inside its binary agree.
VERSION := $(VERSION)
GOFLAGS_BUILD := -trimpath -ldflags "-s -w -X main.version=$(VERSION)"
GOARCH ?= $(shell go env GOARCH)

.PHONY: build test test-unit test-integration vet demo bench bench-smoke clean layer build-SecretsPrefetchLayerX86 build-SecretsPrefetchLayerArm64

## build: the extension binary for this machine (./secrets-prefetch)
build:
	CGO_ENABLED=0 go build $(GOFLAGS_BUILD) -o secrets-prefetch .

## test: vet, unit tests, fuzz seed corpora, integration and end-to-end tests, all under -race
test: vet test-unit test-integration

vet:
	go vet ./...
	cd integration && go vet ./...
	cd examples/go && go vet ./...

test-unit:
	go test -race -count=1 ./...

test-integration:
	bash scripts/install-rie.sh >/dev/null
	cd integration && go test -race -count=1 -timeout 20m ./...

## bench: the benchmarks, each beside its baseline, written to BENCHMARKS.md
## and benchmarks.json (a few minutes; `make test` runs them in smoke mode)
bench:
	cd integration && go run ./cmd/bench -out ../BENCHMARKS.md -json ../benchmarks.json

## bench-smoke: every benchmark at tiny sizes, in seconds (report in .cache/)
bench-smoke:
	mkdir -p .cache
	cd integration && go run ./cmd/bench -smoke -out ../.cache/BENCHMARKS-smoke.md

## demo: run the extension and a sample function under RIE against an emulated AWS
demo:
	bash scripts/install-rie.sh >/dev/null
	cd integration && go run ./cmd/demo

## layer: dist/secrets-prefetch-$(VERSION)-x86_64.zip and -arm64.zip, the
## layer as Lambda unpacks it under /opt (aws lambda publish-layer-version --zip-file)
DIST ?= dist
LAYER_TMP ?= .cache/layer
# The zero-code exec wrapper (AWS_LAMBDA_EXEC_WRAPPER=/opt/secrets-prefetch-env).
WRAPPER := layer/secrets-prefetch-env

layer:
	$(call layer-zip,x86_64,amd64)
	$(call layer-zip,arm64,arm64)

# SAM: `sam build` runs build-<LogicalId> for each layer of template.yaml
# (Metadata: BuildMethod: makefile), with ARTIFACTS_DIR set to the directory
# that becomes the layer. One target per architecture.
build-SecretsPrefetchLayerX86:
	$(call layer-contents,$(ARTIFACTS_DIR),amd64)

build-SecretsPrefetchLayerArm64:
	$(call layer-contents,$(ARTIFACTS_DIR),arm64)

# layer-contents DIR GOARCH: the layer's files: extensions/secrets-prefetch
# (every file in /opt/extensions is started as an extension; its file name is
# its Lambda-Extension-Name) and the wrapper script.
define layer-contents
	@test -n "$(1)" || { echo "ARTIFACTS_DIR is not set (sam build sets it)" >&2; exit 1; }
	mkdir -p $(1)/extensions
	CGO_ENABLED=0 GOOS=linux GOARCH=$(2) go build $(GOFLAGS_BUILD) -o $(1)/extensions/secrets-prefetch .
	install -m 0755 $(WRAPPER) $(1)/secrets-prefetch-env
endef

# layer-zip ARCH GOARCH: $(DIST)/secrets-prefetch-$(VERSION)-ARCH.zip. The zip
# is written by a small Go tool rather than zip(1), which may be missing: it
# keeps the executable bits and fixes every timestamp, so the same sources
# give the same bytes.
define layer-zip
	rm -rf $(LAYER_TMP)/$(1)
	$(call layer-contents,$(LAYER_TMP)/$(1),$(2))
	mkdir -p $(DIST)
	go run ./internal/tools/mkzip -o $(DIST)/secrets-prefetch-$(VERSION)-$(1).zip $(LAYER_TMP)/$(1)
endef

clean:
	rm -rf secrets-prefetch dist .cache
