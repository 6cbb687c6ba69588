#!/usr/bin/env bash
# Installs the secrets-prefetch agent as a systemd service (EC2, or any Linux
# host with systemd), as AWS's Secrets Manager Agent's install does: a
# system user runs the agent, and a random token in a file that one group
# may read protects its API. Run it as root, beside the files it installs:
#
#   sudo ./install.sh [BINARY]     BINARY: default ./secrets-prefetch (make build)
#
# It creates, keeping any that exists already:
#   user  secrets-prefetch        runs the agent (system user, no login, no home)
#   group secrets-prefetch-token  may read the token: add your app's user to it
#   /usr/local/bin/secrets-prefetch                 (replaced: an upgrade)
#   /etc/secrets-prefetch/agent.toml                the configuration
#   /etc/secrets-prefetch/token                     root:secrets-prefetch-token 0640
#   /etc/systemd/system/secrets-prefetch.service    (replaced)
# then enables and starts the service.
#
# ROOT=DIR installs under DIR instead of / (users and groups go into DIR/etc,
# and systemd is left alone): for tests and for building machine images.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
binary=${1:-./secrets-prefetch}
ROOT=${ROOT:-}
user=secrets-prefetch
group=secrets-prefetch-token

die() {
	echo "install.sh: $*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || die "run as root (it creates a user and writes under /etc)"
[ -x "$binary" ] || die "$binary: no such executable (build it with make build, or name it: install.sh PATH)"
for f in agent.toml secrets-prefetch.service; do
	[ -r "$here/$f" ] || die "$here/$f is missing: run install.sh from the examples/ec2 folder it came in"
done

# useradd and groupadd edit $ROOT/etc with --prefix; without ROOT, /etc.
prefix=()
if [ -n "$ROOT" ]; then
	prefix=(--prefix "$ROOT")
	mkdir -p "$ROOT/etc"
	for f in passwd group; do [ -e "$ROOT/etc/$f" ] || install -m 0644 /dev/null "$ROOT/etc/$f"; done
	for f in shadow gshadow; do [ -e "$ROOT/etc/$f" ] || install -m 0600 /dev/null "$ROOT/etc/$f"; done
fi

# id_of FILE NAME: the numeric id of NAME in $ROOT/etc/FILE (passwd or group),
# read from the file itself so that it works for another root too.
id_of() {
	awk -F: -v name="$2" '$1 == name { print $3; found = 1 } END { exit !found }' "$ROOT/etc/$1"
}

id_of group "$group" >/dev/null || groupadd "${prefix[@]}" --system "$group"
id_of group "$user" >/dev/null || groupadd "${prefix[@]}" --system "$user"
if ! id_of passwd "$user" >/dev/null; then
	useradd "${prefix[@]}" --system --gid "$user" --groups "$group" \
		--no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
		--comment "secrets-prefetch agent" "$user"
fi
gid=$(id_of group "$group")

install -d -m 0755 "$ROOT/usr/local/bin" "$ROOT/etc/systemd/system"
install -m 0755 "$binary" "$ROOT/usr/local/bin/secrets-prefetch"
install -m 0644 "$here/secrets-prefetch.service" "$ROOT/etc/systemd/system/secrets-prefetch.service"
install -d -m 0755 "$ROOT/etc/secrets-prefetch"
[ -e "$ROOT/etc/secrets-prefetch/agent.toml" ] || install -m 0644 "$here/agent.toml" "$ROOT/etc/secrets-prefetch/agent.toml"

# The token: 32 random bytes, base64. Written beside the final name and
# renamed into place, so that it never exists with looser permissions.
token="$ROOT/etc/secrets-prefetch/token"
if [ ! -s "$token" ]; then
	tmp=$(mktemp "$token.XXXXXX")
	head -c 32 /dev/urandom | base64 >"$tmp"
	chown "0:$gid" "$tmp"
	chmod 0640 "$tmp"
	mv -f "$tmp" "$token"
fi

if [ -n "$ROOT" ]; then
	echo "installed under $ROOT"
elif [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	systemctl enable --now secrets-prefetch.service
	echo "secrets-prefetch is running: systemctl status secrets-prefetch; journalctl -u secrets-prefetch"
else
	echo "installed; systemd is not running here, so the service was not started" >&2
fi
echo "Let your app read the token: usermod -a -G $group APP_USER"
