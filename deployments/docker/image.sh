#!/usr/bin/env bash
# Builds the anyroute image from deployments/docker/Dockerfile without a registry or network: the Go
# builder image comes from local-images.sh (public, or a local stand-in), module sources are vendored
# into the build context by build-context.sh.
#
# Usage: deployments/docker/image.sh [IMAGE]        (default anyroute:latest; `make image` calls it)
# Env:   VERSION, REVISION  stamped into the binary and the image labels (default: from git)
#        FORCE=1            rebuild even when the image is up to date
#
# Reuse: the image carries a label with a hash of its build inputs (the Go and embedded files of every
# package the binary is built from, go.mod, go.sum, the Dockerfile, the builder image's ID, VERSION and
# REVISION). When IMAGE already has that label the build is skipped, so repeated `make test` runs
# cost a second, and editing a test, the README or a chart rebuilds nothing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
IMAGE=${1:-anyroute:latest}
LABEL=org.anyroute.inputs
cd "$ROOT"

VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
REVISION=${REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}

log() { printf 'image: %s\n' "$*" >&2; }

deployments/docker/local-images.sh base >/dev/null
GO_IMAGE=$(sed -n 's/^GO_IMAGE=//p' .build/images.env)
[ -n "$GO_IMAGE" ] || { log "local-images.sh named no GO_IMAGE in .build/images.env"; exit 1; }

# The files the binary is built from, relative to the repository root, as the image's build sees
# them (linux, no cgo): module packages only; dependencies are pinned by go.sum.
inputs() {
  echo "GO_IMAGE $GO_IMAGE $(docker image inspect -f '{{.Id}}' "$GO_IMAGE")"
  echo "VERSION $VERSION REVISION $REVISION"
  {
    # shellcheck disable=SC2016 # a Go template, not shell
    CGO_ENABLED=0 GOOS=linux go list -deps -f \
      '{{if .Module}}{{if .Module.Main}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}
{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}
{{end}}{{end}}{{end}}' ./cmd/anyroute | sed "s|^$ROOT/||"
    printf '%s\n' go.mod go.sum deployments/docker/Dockerfile .dockerignore
  } | LC_ALL=C sort -u | xargs sha256sum
}
h=$(inputs | sha256sum | cut -c1-16)

old=$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
if [ "${FORCE:-0}" != 1 ] && [ -n "$old" ] &&
  [ "$(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$IMAGE")" = "$h" ]; then
  log "$IMAGE is up to date (inputs $h)"
  exit 0
fi

deployments/docker/build-context.sh
log "building $IMAGE with $GO_IMAGE (inputs $h)"
# --force-rm: a failed step leaves no stopped container behind either.
rc=0
docker build --force-rm -f deployments/docker/Dockerfile \
  --build-arg "GO_IMAGE=$GO_IMAGE" --build-arg GOFLAGS=-mod=vendor --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" \
  --label "$LABEL=$h" -t "$IMAGE" .build/context || rc=$?
# The legacy builder keeps the build stage as an untagged image (the Go image plus sources and
# build cache, about 500 MB a build; BuildKit keeps none), and so does a failed build: remove every
# dangling image that descends from GO_IMAGE within the build stage's few steps, and the image IMAGE
# named before, unless something still uses them.
go_id=$(docker image inspect -f '{{.Id}}' "$GO_IMAGE")
for d in $(docker image ls -q --no-trunc --filter dangling=true); do
  p=$d
  for _ in 1 2 3 4 5 6 7 8; do
    p=$(docker image inspect -f '{{.Parent}}' "$p" 2>/dev/null || true)
    [ -n "$p" ] || break
    if [ "$p" = "$go_id" ]; then docker rmi "$d" >/dev/null 2>&1 || true; break; fi
  done
done
[ "$rc" = 0 ] || { log "docker build failed"; exit "$rc"; }
if [ -n "$old" ] && [ "$old" != "$(docker image inspect -f '{{.Id}}' "$IMAGE")" ]; then
  docker rmi "$old" >/dev/null 2>&1 || true
fi
docker image inspect -f "$IMAGE: {{.Size}} bytes, user {{.Config.User}}" "$IMAGE" >&2
