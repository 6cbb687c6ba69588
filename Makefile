# secrets-prefetch — build, test, demo.
# `make demo` shows the extension at work under AWS's Runtime Interface
# Emulator with an emulated AWS; `make test` runs every test (CI runs it).

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GOFLAGS_BUILD := -trimpath -ldflags "-s -w -X main.version=$(VERSION)"
GOARCH ?= $(shell go env GOARCH)

.PHONY: build test test-unit test-integration vet demo clean

## build: the extension binary for this machine (./secrets-prefetch)
build:
	CGO_ENABLED=0 go build $(GOFLAGS_BUILD) -o secrets-prefetch .

## test: vet, unit tests, fuzz seed corpora, integration and end-to-end tests, all under -race
test: vet test-unit test-integration

vet:
	go vet ./...
	cd integration && go vet ./...

test-unit:
	go test -race -count=1 ./...

test-integration:
	bash scripts/install-rie.sh >/dev/null
	cd integration && go test -race -count=1 -timeout 20m ./...

## demo: run the extension and a sample function under RIE against an emulated AWS
demo:
	bash scripts/install-rie.sh >/dev/null
	cd integration && go run ./cmd/demo

clean:
	rm -rf secrets-prefetch dist .cache
