#!/usr/bin/env bash
# Installs the Node.js SDK clients of package-lock.json with `npm ci` into
# DEST (default: the repository's git-ignored .cache/sdk-clients/node), unless
# the same lock file is installed there already. Prints DEST.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dest="${1:-$here/../../../.cache/sdk-clients/node}"
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"
if ! cmp -s "$here/package-lock.json" "$dest/package-lock.json" || [ ! -d "$dest/node_modules/@aws-sdk/client-ssm" ]; then
	cp "$here/package.json" "$here/package-lock.json" "$dest/"
	(cd "$dest" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
fi
cp "$here/reads.mjs" "$dest/"
echo "$dest"
