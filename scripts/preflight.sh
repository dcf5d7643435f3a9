#!/usr/bin/env bash
# The first step of `make test` (make preflight), after make's docker-check: installs, through
# scripts/deps.sh, the Debian packages every suite needs where their command is missing, and stops at
# once, with one line naming what is missing and how to get it, where that cannot work. Nothing long
# runs before it.
#
# Usage: scripts/preflight.sh [COMMAND...]   extra commands to ensure (make passes debootstrap
#                                            where no registry answers)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fail() { echo "preflight: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] ||
	fail "make test must run as root: its e2e demo adds a dummy network interface, and apt-get installs what is missing (as a user: make test-unit test-integration fuzz, with the packages installed)"

# git: versions and the build context; gcc: the race detector (cgo); docker-compose: the compose
# test; prometheus, promtool, wrk: the real-binary tests; siege, ip: the e2e demo.
# Where it cannot install (no apt-get), deps.sh prints the one line itself.
scripts/deps.sh git gcc docker-compose prometheus promtool wrk siege ip "$@" || exit 1

[[ $(go env CGO_ENABLED) == 1 ]] ||
	fail "cgo is off (CGO_ENABLED=$(go env CGO_ENABLED)), and the race detector needs it: unset CGO_ENABLED, or put gcc on PATH"
echo "preflight: Docker answers, running as root, packages present, cgo on"
