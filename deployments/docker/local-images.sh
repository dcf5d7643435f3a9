#!/usr/bin/env bash
# Kept for callers of this old path (test/containers): runs `make images`, which also builds or
# reuses the anyroute image, and prints .build/images.env, the names compose and the tests read.
# Usage: deployments/docker/local-images.sh [all]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
case ${1:-all} in all) ;; *) echo "local-images.sh: only 'all' is left; see deployments/no-registry/images.sh" >&2; exit 2 ;; esac
make -C "$root" --no-print-directory images >&2
cat "$root/.build/images.env"
