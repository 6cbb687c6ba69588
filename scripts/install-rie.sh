#!/usr/bin/env bash
# install-rie.sh installs AWS's Lambda Runtime Interface Emulator (RIE) into the
# repository's git-ignored cache and prints the binary's path on stdout.
#
# The emulator is built from source through the Go module proxy (no prebuilt
# downloads), pinned to one version; a stamp file records what is installed so a
# second run is a no-op. The end-to-end tests also need `unshare` (util-linux) to
# give RIE a private /opt; with --check-unshare the script verifies that too and,
# as root, installs util-linux with apt-get when it is missing.
#
# Usage: scripts/install-rie.sh [--check-unshare]
# Env:   RIE_VERSION (default below), RIE_CACHE_DIR (default <repo>/.cache/bin)
set -euo pipefail

RIE_MODULE=github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie
RIE_VERSION=${RIE_VERSION:-v0.0.0-20261030222936-bef5c4ba774d}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin_dir=${RIE_CACHE_DIR:-$repo/.cache/bin}
rie=$bin_dir/aws-lambda-rie
stamp=$bin_dir/aws-lambda-rie.version

log() { echo "install-rie: $*" >&2; }

# ensure_unshare makes sure `unshare` exists; it does not prove that this process
# may create a mount namespace (the Go harness probes that and says why not).
ensure_unshare() {
	command -v unshare >/dev/null 2>&1 && return 0
	if [ "$(id -u)" -ne 0 ]; then
		log "unshare (util-linux) is missing; install it as root: apt-get install util-linux"
		return 1
	fi
	if ! command -v apt-get >/dev/null 2>&1; then
		log "unshare is missing and apt-get is not available; install util-linux"
		return 1
	fi
	log "installing util-linux for unshare"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq util-linux >&2
	command -v unshare >/dev/null 2>&1
}

if [ "${1:-}" = "--check-unshare" ]; then
	ensure_unshare
fi

if [ -x "$rie" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$RIE_VERSION" ]; then
	echo "$rie"
	exit 0
fi

command -v go >/dev/null 2>&1 || { log "go is required to build RIE"; exit 1; }
mkdir -p "$bin_dir"
log "building $RIE_MODULE@$RIE_VERSION"
# Build in a throwaway directory so no go.mod/go.work of this repo applies, and
# write the stamp only after the binary is in place.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 GOBIN="$bin_dir" go install "$RIE_MODULE@$RIE_VERSION") >&2
echo "$RIE_VERSION" >"$stamp"
echo "$rie"
