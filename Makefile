# secrets-prefetch — build, test, demo.
# `make demo` shows the extension at work under AWS's Runtime Interface
# Emulator with an emulated AWS; `make test` runs every test (CI runs it).

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Evaluate the version once per make run, so a layer's zip name and the
# version inside its binary agree.
VERSION := $(VERSION)
GOFLAGS_BUILD := -trimpath -ldflags "-s -w -X main.version=$(VERSION)"
GOARCH ?= $(shell go env GOARCH)

.PHONY: build test test-unit test-integration vet demo demo-agent bench bench-smoke clean layer image build-SecretsPrefetchLayerX86 build-SecretsPrefetchLayerArm64

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

## image: the agent's container image (Dockerfile: FROM scratch, the static
## binary, CA certificates, a non-root user), built with podman or docker,
## whichever is there, and tagged $(IMAGE)
IMAGE ?= secrets-prefetch:latest
# The build context: only what the Dockerfile copies.
IMAGE_CTX ?= .cache/image
# The trust store copied into the image (Debian's ca-certificates package).
CA_CERTS ?= /etc/ssl/certs/ca-certificates.crt
CONTAINER_ENGINE ?= $(shell command -v podman 2>/dev/null || command -v docker 2>/dev/null)
# podman builds OCI images by default, whose config has no HEALTHCHECK.
IMAGE_FORMAT = $(if $(findstring podman,$(notdir $(CONTAINER_ENGINE))),--format docker)

image:
	@test -n "$(CONTAINER_ENGINE)" || { echo "make image: needs podman or docker (apt-get install podman runc)" >&2; exit 1; }
	@test -r "$(CA_CERTS)" || { echo "make image: no CA certificates at $(CA_CERTS) (apt-get install ca-certificates, or set CA_CERTS)" >&2; exit 1; }
	rm -rf $(IMAGE_CTX)
	mkdir -p $(IMAGE_CTX)
	CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH) go build $(GOFLAGS_BUILD) -o $(IMAGE_CTX)/secrets-prefetch .
	cp $(CA_CERTS) $(IMAGE_CTX)/ca-certificates.crt
	printf 'secrets-prefetch:x:65532:65532:secrets-prefetch:/:/sbin/nologin\n' > $(IMAGE_CTX)/passwd
	printf 'secrets-prefetch:x:65532:\n' > $(IMAGE_CTX)/group
	$(CONTAINER_ENGINE) build $(IMAGE_FORMAT) --platform linux/$(GOARCH) -t $(IMAGE) -f Dockerfile $(IMAGE_CTX)

## demo-agent: the agent image, an app container and the emulated AWS in one
## pod under podman: the prefetch, reads served as hits, a refresh by timer
demo-agent: image
	cd integration && go run ./cmd/demo-agent -image $(IMAGE)

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
