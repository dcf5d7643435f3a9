#!/usr/bin/env bash
# Install the system packages the tests need, from Debian's archive, only when a command is missing:
# a machine that has them (or a user who installed them otherwise) is left alone.
#
# Usage: scripts/deps.sh COMMAND...   e.g. scripts/deps.sh prometheus promtool siege wrk
set -euo pipefail

declare -A package_of=(
	[prometheus]=prometheus
	[promtool]=prometheus
	[siege]=siege
	[ip]=iproute2
	[wrk]=wrk
	[debootstrap]=debootstrap
	[docker-compose]=docker-compose
)

missing=()
for cmd in "$@"; do
	pkg=${package_of[$cmd]:-}
	[[ -n $pkg ]] || { echo "deps.sh: no package known for $cmd" >&2; exit 2; }
	command -v "$cmd" >/dev/null || missing+=("$pkg")
done
((${#missing[@]})) || exit 0

mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [[ $(id -u) -ne 0 ]]; then
	echo "deps.sh: missing ${missing[*]}; install them (sudo apt-get install ${missing[*]}) or run as root" >&2
	exit 1
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# -o DPkg::Lock::Timeout: another apt run (a parallel make target) finishes first instead of failing us.
apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
# Debian's prometheus package starts a service where an init system runs; tests start their own.
if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v service >/dev/null; then
	service prometheus stop >/dev/null 2>&1 || true
fi
