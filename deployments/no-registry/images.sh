#!/usr/bin/env bash
# The no-registry path: every image the project runs, built on a machine where no container registry
# answers (the build and CI machines reach only the Go module proxy and Debian's archive). With a
# registry none of this runs: `docker build -f deployments/docker/Dockerfile .` is the whole story.
# `make` takes this path when NO_REGISTRY=1, and sets that itself when `images.sh probe` finds that
# a pull of the Go image fails.
#
# Usage: deployments/no-registry/images.sh probe           print 1 when no registry answers, else 0
#        deployments/no-registry/images.sh anyroute IMAGE  the anyroute image (make image)
#        deployments/no-registry/images.sh stack           Prometheus, Jaeger, siege (make images)
# Env:   VERSION, REVISION  stamped into the anyroute binary (default: from git)
#        ARCH               the anyroute image's architecture (make image ARCH=arm64); by default
#                           the Go builder's, the machine's own. Another one is cross-compiled.
#        FORCE=1            rebuild the anyroute image even when it is up to date
#        PULL_TIMEOUT       seconds the probe's pull may take (default 300)
#        DEBIAN_MIRROR      the archive debootstrap and apt use
#
# What it builds, each only when the hash of its inputs changed (label org.anyroute.local.inputs on
# a stand-in, org.anyroute.inputs on the anyroute image), so a repeated `make test` costs seconds:
#   anyroute-local/debian:bookworm      a debootstrap minbase root (kept in .build/images), imported
#   anyroute-local/golang:MINOR         that root plus the Go toolchain go.mod selects (golang.Dockerfile)
#   anyroute-local/prometheus:bookworm  Debian's prometheus package (prometheus.Dockerfile)
#   anyroute-local/jaeger:2             the Jaeger v2 binary scripts/tools.sh builds (jaeger.Dockerfile)
#   anyroute-siege:latest               deployments/docker/siege.Dockerfile on the Debian stand-in
#   anyroute-local/golang-deps:MINOR-ARCH
#                                       the Go stand-in plus the compiled dependencies of the
#                                       anyroute binary for linux/ARCH (deps.Dockerfile)
#   IMAGE                               deployments/docker/Dockerfile on that image, from a build
#                                       context with the module sources vendored (.build/context)
# and names them in .build/images.env, which compose and the container tests read. Stand-ins carry
# local names, so they can never be mistaken for, or pushed over, a public image.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=$ROOT/.build
ENV_FILE=$BUILD/images.env
LABEL=org.anyroute.local.inputs
IMAGE_LABEL=org.anyroute.inputs
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cd "$ROOT"

log() { printf 'no-registry: %s\n' "$*" >&2; }
hash_of() { sha256sum | cut -c1-16; }
image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null; }
# image_label NAME [LABEL], up_to_date NAME HASH [LABEL]: LABEL defaults to the stand-ins' label.
image_label() { docker image inspect -f "{{index .Config.Labels \"${2:-$LABEL}\"}}" "$1" 2>/dev/null || true; }
up_to_date() { [ "$(image_label "$1" "${3:-$LABEL}")" = "$2" ]; }
# base_key NAME: what an image built on NAME depends on: a stand-in's input hash (stable across a
# re-import of the cached root), else the image ID.
base_key() { local l; l=$(image_label "$1"); if [ -n "$l" ]; then echo "$l"; else image_id "$1"; fi; }

# probe: the switch make flips. The Go image is the first thing the normal path pulls; a machine
# that has it or can pull it takes the normal path.
probe() {
  local go_image err
  go_image=$(sed -n 's/^ARG GO_IMAGE=//p' deployments/docker/Dockerfile)
  if image_id "$go_image" >/dev/null || err=$(timeout "${PULL_TIMEOUT:-300}" docker pull -q "$go_image" 2>&1); then
    echo 0
    return
  fi
  log "cannot pull $go_image (${err##*$'\n'}): NO_REGISTRY=1, images are built from deployments/no-registry (NO_REGISTRY=0 forces docker build)"
  echo 1
}

# build_tar NAME HASH [docker build args...]: docker build with a tar context on stdin, labelled with
# HASH. --network host: the default bridge may not reach Debian's archive. The image the tag named
# before is removed when nothing else uses it, so a rebuild leaves no dangling copy (hundreds of MB
# for Go).
build_tar() {
  local name=$1 h=$2 old
  shift 2
  old=$(image_id "$name" || true)
  docker build -q --network host --label "$LABEL=$h" "$@" -t "$name" - >/dev/null
  if [ -n "$old" ] && [ "$old" != "$(image_id "$name")" ]; then docker rmi "$old" >/dev/null 2>&1 || true; fi
}

# The Go the repository selects: go.mod's toolchain line names the patched release, which
# GOTOOLCHAIN=auto fetches once through the module proxy where the machine's Go is older (GOROOT/go.env
# may say local). An explicit GOTOOLCHAIN other than local still wins.
case ${GOTOOLCHAIN:-local} in local) REPO_GOTOOLCHAIN=auto ;; *) REPO_GOTOOLCHAIN=$GOTOOLCHAIN ;; esac
repo_go() { GOTOOLCHAIN=$REPO_GOTOOLCHAIN go env "$@"; }

declare -A RESOLVED=()

build_debian() {
  local name=anyroute-local/debian:bookworm include=ca-certificates h tarball tmp
  RESOLVED[DEBIAN_IMAGE]=$name
  # The recipe is the input: change a package or the trimming and the hash (and tarball) change.
  h=$(printf 'bookworm minbase %s %s v1' "$include" "$MIRROR" | hash_of)
  up_to_date "$name" "$h" && return 0
  tarball=$BUILD/images/debian-bookworm-$h.tar
  if [ ! -f "$tarball" ]; then
    "$ROOT/scripts/deps.sh" debootstrap
    tmp=$BUILD/images/root.tmp
    rm -rf "$tmp"
    mkdir -p "$tmp"
    log "debootstrap bookworm (about 40 s)"
    debootstrap --variant=minbase --include="$include" bookworm "$tmp" "$MIRROR" >"$BUILD/images/debootstrap.log" 2>&1 ||
      { tail -n 20 "$BUILD/images/debootstrap.log" >&2; exit 1; }
    # Trimmed as debian:bookworm-slim is: no caches, docs or translations in derived images.
    rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/* \
      "$tmp"/usr/share/doc/* "$tmp"/usr/share/man/* "$tmp"/usr/share/locale/*
    printf 'path-exclude /usr/share/%s/*\n' doc man locale >"$tmp/etc/dpkg/dpkg.cfg.d/docker-slim"
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s-security bookworm-security main\n' \
      "$MIRROR" "$MIRROR" "$MIRROR" >"$tmp/etc/apt/sources.list"
    rm -f "$BUILD"/images/debian-bookworm-*.tar # roots of older recipes
    tar -C "$tmp" --numeric-owner -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
    rm -rf "$tmp"
  fi
  log "importing $name"
  docker import -c "LABEL $LABEL=$h" -c 'CMD ["bash"]' "$tarball" "$name" >/dev/null
}

build_golang() {
  build_debian
  local base=${RESOLVED[DEBIAN_IMAGE]} goroot version name h
  goroot=$(repo_go GOROOT)
  version=$(repo_go GOVERSION)
  [ "$(GOTOOLCHAIN=local "$goroot/bin/go" env GOVERSION)" = "$version" ] || { log "$goroot is not $version"; exit 1; }
  name=anyroute-local/golang:$(sed -E 's/^go([0-9]+\.[0-9]+).*/\1/' <<<"$version")
  RESOLVED[GO_IMAGE]=$name
  h=$({ base_key "$base"; cat "$HERE/golang.Dockerfile"; head -c 200 "$goroot/VERSION"; } | hash_of)
  up_to_date "$name" "$h" && return 0
  log "building $name from $goroot"
  tar -c -C "$HERE" golang.Dockerfile -C "$(dirname "$goroot")" \
    --transform "s,^$(basename "$goroot"),go," "$(basename "$goroot")" |
    build_tar "$name" "$h" -f golang.Dockerfile --build-arg "BASE=$base"
}

build_prometheus() {
  build_debian
  local base=${RESOLVED[DEBIAN_IMAGE]} name=anyroute-local/prometheus:bookworm h
  RESOLVED[PROMETHEUS_IMAGE]=$name
  h=$({ base_key "$base"; cat "$HERE/prometheus.Dockerfile"; } | hash_of)
  up_to_date "$name" "$h" && return 0
  log "building $name from Debian's prometheus package"
  tar -c -C "$HERE" prometheus.Dockerfile | build_tar "$name" "$h" -f prometheus.Dockerfile --build-arg "BASE=$base"
}

build_jaeger() {
  build_debian
  local base=${RESOLVED[DEBIAN_IMAGE]} name=anyroute-local/jaeger:2 h
  local bin=${TOOLS_DIR:-$ROOT/.tools}/bin/jaeger conf=$ROOT/scripts/jaeger-config.yaml
  RESOLVED[JAEGER_IMAGE]=$name
  # An existing binary is used as is (tools.sh may be busy holding its lock); its hash rebuilds the
  # image whenever tools.sh replaces it.
  [ -x "$bin" ] || "$ROOT/scripts/tools.sh" jaeger >&2
  h=$({ base_key "$base"; cat "$HERE/jaeger.Dockerfile" "$conf"; sha256sum <"$bin"; } | hash_of)
  up_to_date "$name" "$h" && return 0
  log "building $name from $bin"
  tar -c -C "$HERE" jaeger.Dockerfile -C "$(dirname "$bin")" jaeger -C "$(dirname "$conf")" jaeger-config.yaml |
    build_tar "$name" "$h" -f jaeger.Dockerfile --build-arg "BASE=$base"
}

build_siege() {
  build_debian
  local base=${RESOLVED[DEBIAN_IMAGE]} name=anyroute-siege:latest dir=deployments/docker h
  RESOLVED[SIEGE_IMAGE]=$name
  h=$({ base_key "$base"; cat "$dir/siege.Dockerfile" "$dir/siege-entrypoint.sh"; } | hash_of)
  up_to_date "$name" "$h" && return 0
  log "building $name on $base"
  tar -c -C "$dir" siege.Dockerfile siege-entrypoint.sh |
    build_tar "$name" "$h" -f siege.Dockerfile --build-arg "DEBIAN_IMAGE=$base"
}

# context: .build/context, the files git would ship (tracked, plus untracked ones not ignored, so
# uncommitted work builds too) and vendor/ from `go mod vendor`, so the image build needs no network.
# Made once a run.
CONTEXT_MADE=
context() {
  local ctx=$BUILD/context
  [ -z "$CONTEXT_MADE" ] || return 0
  CONTEXT_MADE=1
  rm -rf "$ctx"
  mkdir -p "$ctx"
  # Deleted-but-still-tracked files are skipped, and so are the build and tool folders even before
  # .gitignore lists them (the context must not copy itself or the tool binaries).
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do
      case $f in .build/* | .tools/* | bin/*) continue ;; esac
      [ -f "$f" ] && printf '%s\0' "$f"
    done |
    tar --null -T - -cf - | tar -C "$ctx" -xf -
  [ -d "$ctx/vendor" ] || go mod vendor -o "$ctx/vendor"
  log "build context $ctx: $(du -sh "$ctx" | cut -f1), $(find "$ctx" -type f | wc -l) files"
}

# build_deps GO_IMAGE ARCH: anyroute-local/golang-deps:MINOR-ARCH (deps.Dockerfile), the Go
# stand-in with the anyroute binary's dependencies for linux/ARCH compiled into its build cache;
# its name goes to DEPS_IMAGE. Rebuilt only when go.mod, go.sum or the set of packages the binary
# imports from outside the module changes, so a commit to the service's own code reuses it.
DEPS_IMAGE=
build_deps() {
  local go_image=$1 arch=$2 list=$BUILD/images/deps-$2/deps.txt h
  DEPS_IMAGE=${go_image/\/golang:/\/golang-deps:}-$arch
  # The tags are the Dockerfile's go build's.
  mkdir -p "$(dirname "$list")"
  CGO_ENABLED=0 GOOS=linux GOARCH=$arch go list -deps -tags nodoctor \
    -f '{{if not .Standard}}{{if not .Module.Main}}{{.ImportPath}}{{end}}{{end}}' ./cmd/anyroute >"$list"
  h=$({ base_key "$go_image"; echo "$arch"; cat "$HERE/deps.Dockerfile" go.mod go.sum "$list"; } | hash_of)
  up_to_date "$DEPS_IMAGE" "$h" && return 0
  context
  log "building $DEPS_IMAGE: $(wc -l <"$list") packages from vendor/ (a new go.sum or import)"
  tar -c -C "$HERE" deps.Dockerfile -C "$BUILD/context" go.mod go.sum vendor -C "$(dirname "$list")" deps.txt |
    build_tar "$DEPS_IMAGE" "$h" -f deps.Dockerfile --build-arg "GO_IMAGE=$go_image" --build-arg "TARGETARCH=$arch"
}

# inputs GO_IMAGE ARCH: what the anyroute image is built from, as its build sees it (linux/ARCH, no
# cgo): the Go and embedded files of the module's packages (dependencies are pinned by go.sum), the
# Dockerfile, the builder image, VERSION, REVISION and ARCH. Editing a test, the README or the chart
# rebuilds nothing.
inputs() {
  echo "GO_IMAGE $1 $(image_id "$1")"
  echo "VERSION $VERSION REVISION $REVISION ARCH $2"
  {
    # shellcheck disable=SC2016 # a Go template, not shell
    CGO_ENABLED=0 GOOS=linux GOARCH=$2 go list -deps -f \
      '{{if .Module}}{{if .Module.Main}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}
{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}
{{end}}{{end}}{{end}}' ./cmd/anyroute | sed "s|^$ROOT/||"
    printf '%s\n' go.mod go.sum deployments/docker/Dockerfile .dockerignore
  } | LC_ALL=C sort -u | xargs sha256sum
}

# set_arch IMAGE ARCH: the classic builder writes the building machine's architecture into the
# config of an image on scratch, whatever the binary in it was compiled for. This rewrites the
# config's architecture (docker save, edit, docker load; the layers stay as they are) where it is
# not ARCH already.
set_arch() {
  local image=$1 arch=$2 old dir=$BUILD/images/save.tmp cfg new
  old=$(image_id "$image")
  [ "$(docker image inspect -f '{{.Architecture}}' "$old")" != "$arch" ] || return 0
  "$ROOT/scripts/deps.sh" jq
  rm -rf "$dir"
  mkdir -p "$dir"
  docker save "$image" | tar -C "$dir" -xf -
  cfg=$(jq -r '.[0].Config' "$dir/manifest.json")
  jq -c --arg a "$arch" '.architecture = $a' "$dir/$cfg" >"$dir/config.tmp"
  rm "$dir/$cfg"
  # An image's ID is the digest of its config, and so is the config's name in a saved image.
  new=$(sha256sum <"$dir/config.tmp" | cut -d' ' -f1).json
  mv "$dir/config.tmp" "$dir/$new"
  jq -c --arg c "$new" '.[0].Config = $c' "$dir/manifest.json" >"$dir/manifest.tmp"
  mv "$dir/manifest.tmp" "$dir/manifest.json"
  tar -C "$dir" -cf - . | docker load -q >/dev/null
  rm -rf "$dir"
  docker rmi "$old" >/dev/null 2>&1 || true
}

build_anyroute() {
  local image=${1:?usage: images.sh anyroute IMAGE} go_image build_arch arch h old rc=0 go_id d p
  VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
  REVISION=${REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
  build_golang
  go_image=${RESOLVED[GO_IMAGE]}
  build_arch=$(docker image inspect -f '{{.Architecture}}' "$go_image")
  arch=${ARCH:-$build_arch}
  build_deps "$go_image" "$arch"
  go_image=$DEPS_IMAGE
  h=$(inputs "$go_image" "$arch" | hash_of)
  old=$(image_id "$image" || true)
  if [ "${FORCE:-0}" != 1 ] && [ -n "$old" ] && up_to_date "$image" "$h" "$IMAGE_LABEL"; then
    log "$image is up to date (inputs $h)"
    return 0
  fi
  context
  log "building $image for linux/$arch with $go_image (inputs $h)"
  # --force-rm: a failed step leaves no stopped container behind either. The platform arguments
  # are those BuildKit would set: build on the Go image's platform, compile for ARCH.
  docker build --force-rm -f deployments/docker/Dockerfile --label "$IMAGE_LABEL=$h" \
    --build-arg "GO_IMAGE=$go_image" --build-arg GOFLAGS=-mod=vendor \
    --build-arg "BUILDPLATFORM=linux/$build_arch" --build-arg "TARGETARCH=$arch" \
    --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" -t "$image" "$BUILD/context" || rc=$?
  # The legacy builder keeps the build stage as an untagged image (the Go image plus sources and
  # build cache, about 500 MB a build), and so does a failed build: remove every dangling image that
  # descends from the Go image within the build stage's few steps, unless something still uses it.
  go_id=$(image_id "$go_image")
  for d in $(docker image ls -q --no-trunc --filter dangling=true); do
    p=$d
    for _ in $(seq 16); do
      p=$(docker image inspect -f '{{.Parent}}' "$p" 2>/dev/null || true)
      [ -n "$p" ] || break
      if [ "$p" = "$go_id" ]; then docker rmi "$d" >/dev/null 2>&1 || true; break; fi
    done
  done
  [ "$rc" = 0 ] || { log "docker build of $image failed"; exit "$rc"; }
  set_arch "$image" "$arch"
  if [ -n "$old" ] && [ "$old" != "$(image_id "$image")" ]; then docker rmi "$old" >/dev/null 2>&1 || true; fi
  docker image inspect -f "$image: {{.Os}}/{{.Architecture}}, {{.Size}} bytes, user {{.Config.User}}" "$image" >&2
}

# write_env: the names resolved in this run, merged into .build/images.env, so `anyroute` after
# `stack` does not forget the others.
write_env() {
  local k v
  declare -A out=()
  if [ -f "$ENV_FILE" ]; then
    while IFS='=' read -r k v; do
      case $k in '' | '#'*) ;; *) out[$k]=$v ;; esac
    done <"$ENV_FILE"
  fi
  for k in "${!RESOLVED[@]}"; do out[$k]=${RESOLVED[$k]}; done
  {
    echo "# written by deployments/no-registry/images.sh; make- and compose-env-file-includable"
    for k in "${!out[@]}"; do echo "$k=${out[$k]}"; done | sort
  } >"$ENV_FILE.tmp"
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

main() {
  mkdir -p "$BUILD/images"
  case ${1:-} in
    probe) probe ;;
    anyroute) build_anyroute "${2:-}" ;;
    stack) build_prometheus; build_jaeger; build_siege ;;
    *) sed -n '8,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
  esac
  [ "${#RESOLVED[@]}" = 0 ] || write_env
}

main "$@"
