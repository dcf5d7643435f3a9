#!/usr/bin/env bash
# Install the system packages the tests need, from Debian's archive, only when a command is missing:
# a machine that has them (or a user who installed them otherwise) is left alone.
#
# Usage: scripts/deps.sh COMMAND...   e.g. scripts/deps.sh prometheus promtool siege wrk
# Where it cannot install (not root, or no apt-get), it prints one line naming what is missing and
# exits 1.
set -euo pipefail

# Command -> the Debian packages that provide it (space-separated). gcc: the race detector needs cgo,
# and cgo needs the C library's headers, which gcc only recommends.
declare -A package_of=(
	[prometheus]=prometheus
	[promtool]=prometheus
	[siege]=siege
	[ip]=iproute2
	[wrk]=wrk
	[debootstrap]=debootstrap
	[docker-compose]=docker-compose
	[gcc]="gcc libc6-dev"
	[shellcheck]=shellcheck
	[jq]=jq
	[qemu-aarch64-static]=qemu-user-static
	[git]=git
	[runc]=runc
	[iptables]=iptables
	[nft]=nftables
	[openssl]=openssl
	[curl]=curl
)

missing=()
for cmd in "$@"; do
	pkgs=${package_of[$cmd]:-}
	[[ -n $pkgs ]] || { echo "deps.sh: no package known for $cmd" >&2; exit 2; }
	if ! command -v "$cmd" >/dev/null; then
		read -ra p <<<"$pkgs"
		missing+=("${p[@]}")
	fi
done
((${#missing[@]})) || exit 0

mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if ! command -v apt-get >/dev/null; then
	echo "deps.sh: missing ${missing[*]} (Debian package names) and there is no apt-get here: install them with your package manager" >&2
	exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "deps.sh: missing ${missing[*]}: install them (sudo apt-get install ${missing[*]}) or run as root" >&2
	exit 1
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# -o DPkg::Lock::Timeout: another apt run (a parallel make target) finishes first instead of failing us.
apt-get update -qq
apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
# Debian's prometheus package starts a service where an init system runs; tests start their own.
if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v service >/dev/null; then
	service prometheus stop >/dev/null 2>&1 || true
fi
