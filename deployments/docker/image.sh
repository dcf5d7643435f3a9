#!/usr/bin/env bash
# Kept for callers of this old path (test/containers): runs `make image`, which builds IMAGE with
# docker build, or where no registry answers through deployments/no-registry/images.sh.
# Usage: deployments/docker/image.sh [IMAGE]   (default anyroute:latest)
set -euo pipefail
exec make -C "$(dirname "${BASH_SOURCE[0]}")/../.." --no-print-directory image IMAGE="${1:-anyroute:latest}"
