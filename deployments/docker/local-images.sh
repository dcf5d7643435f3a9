#!/usr/bin/env bash
# Resolves the base images the project needs and writes their names to .build/images.env.
#
# Usage: deployments/docker/local-images.sh [base|all|go|debian|prometheus|jaeger|siege]...
#   base  what the anyroute image needs (the Go builder; the runtime stage is scratch)
#   all   everything compose and the container tests use (default)
#
# A public image is used when it is present locally or can be pulled. Where no registry answers
# (the build and CI machines), a local stand-in is built from Debian's archive and the machine's Go
# toolchain instead. Stand-ins carry local names (anyroute-local/...) so they can never be mistaken
# for, or pushed over, a public image; each carries a hash of its inputs and is rebuilt only when
# that hash changes. NO_PULL=1 skips pull attempts; PULL_TIMEOUT bounds each one (seconds).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD="$ROOT/.build"
ENV_FILE="$BUILD/images.env"
LABEL=org.anyroute.local.inputs
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# The Go the repository selects: go.mod's toolchain line names the patched release, and
# GOTOOLCHAIN=auto (run in the repository root) resolves it, fetched once through the module proxy
# into the module cache, where a machine's own Go is older (GOROOT/go.env may say local). An explicit
# GOTOOLCHAIN other than local still wins. The stand-in builder copies this GOROOT, and a public Go
# image must be at least this version.
case ${GOTOOLCHAIN:-local} in local) REPO_GOTOOLCHAIN=auto ;; *) REPO_GOTOOLCHAIN=$GOTOOLCHAIN ;; esac
repo_go() { (cd "$ROOT" && GOTOOLCHAIN=$REPO_GOTOOLCHAIN go env "$@"); }
GO_VERSION=$(repo_go GOVERSION 2>/dev/null || echo go1.26)
GO_MINOR=$(sed -E 's/^go([0-9]+\.[0-9]+).*/\1/' <<<"$GO_VERSION")

# Public defaults: what a machine that reaches a registry uses. JAEGER matches the v1.76.0 module
# (released as v2.13.0) that scripts/tools.sh builds the stand-in from.
# golang:MINOR tracks the latest patch release of that minor version.
PUB_GO="golang:${GO_MINOR}"
PUB_DEBIAN="debian:bookworm-slim"
PUB_PROMETHEUS="prom/prometheus:v2.53.0"
PUB_JAEGER="jaegertracing/jaeger:2.13.0"

declare -A RESOLVED=()
PULLS_FAILED=${NO_PULL:-0}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

log() { printf 'local-images: %s\n' "$*" >&2; }
hash_of() { sha256sum | cut -c1-16; }
image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null; }
image_label() { docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$1" 2>/dev/null || true; }
# base_key NAME: what a derived image depends on: a stand-in's input hash (stable across a re-import
# of the cached root), else the image ID.
base_key() { local l; l=$(image_label "$1"); if [ -n "$l" ]; then echo "$l"; else image_id "$1"; fi; }

# try_public NAME: true when NAME is present or pullable. After one failed pull the rest are
# skipped, since without a registry each would only fail the same way.
try_public() {
  image_id "$1" >/dev/null && return 0
  [ "$PULLS_FAILED" = 1 ] && return 1
  log "pulling $1"
  if timeout "${PULL_TIMEOUT:-120}" docker pull -q "$1" >/dev/null 2>&1; then return 0; fi
  log "cannot pull $1: building a local stand-in"
  PULLS_FAILED=1
  return 1
}

# up_to_date NAME HASH: the stand-in exists and was built from the same inputs.
up_to_date() { [ "$(image_label "$1")" = "$2" ]; }

# build_stream NAME HASH: docker build with a tar context on stdin. --network host because the
# default bridge may not reach the Debian archive on every machine.
# Extra arguments go to docker build. The image the tag named before is removed when nothing else
# uses it, so a rebuilt stand-in leaves no dangling copy of itself (hundreds of MB for Go).
build_stream() {
  local name=$1 h=$2 old; shift 2
  old=$(image_id "$name" || true)
  docker build -q --network host --label "$LABEL=$h" "$@" -t "$name" - >/dev/null
  if [ -n "$old" ] && [ "$old" != "$(image_id "$name")" ]; then docker rmi "$old" >/dev/null 2>&1 || true; fi
}

ensure_debootstrap() {
  command -v debootstrap >/dev/null && return 0
  log "installing debootstrap"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}

# standin_debian: imports the debootstrap root as anyroute-local/debian:bookworm (sets STANDIN).
standin_debian() {
  STANDIN=anyroute-local/debian:bookworm
  # The recipe is the input: change a package or the trimming and the hash (and tarball) change.
  local include=ca-certificates
  local h; h=$(printf 'bookworm minbase %s %s v1' "$include" "$MIRROR" | hash_of)
  local tarball="$BUILD/images/debian-bookworm-$h.tar"
  up_to_date "$STANDIN" "$h" && return 0
  if [ ! -f "$tarball" ]; then
    ensure_debootstrap
    local tmp="$BUILD/images/root.tmp"
    rm -rf "$tmp"; mkdir -p "$tmp"
    log "debootstrap bookworm (about 30-40 s)"
    debootstrap --variant=minbase --include="$include" bookworm "$tmp" "$MIRROR" >"$BUILD/images/debootstrap.log" 2>&1 \
      || { tail -n 20 "$BUILD/images/debootstrap.log" >&2; exit 1; }
    # Same trimming as debian:bookworm-slim: no caches, docs or translations in derived images.
    rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/* \
      "$tmp"/usr/share/doc/* "$tmp"/usr/share/man/* "$tmp"/usr/share/locale/*
    printf 'path-exclude /usr/share/%s/*\n' doc man locale >"$tmp/etc/dpkg/dpkg.cfg.d/docker-slim"
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s-security bookworm-security main\n' \
      "$MIRROR" "$MIRROR" "$MIRROR" >"$tmp/etc/apt/sources.list"
    rm -f "$BUILD"/images/debian-bookworm-*.tar # roots of older recipes
    tar -C "$tmp" --numeric-owner -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
    rm -rf "$tmp"
  fi
  log "importing $STANDIN"
  docker import -c "LABEL $LABEL=$h" -c 'CMD ["bash"]' "$tarball" "$STANDIN" >/dev/null
}

resolve_debian() {
  [ -n "${RESOLVED[DEBIAN_IMAGE]:-}" ] && return 0
  if try_public "$PUB_DEBIAN"; then RESOLVED[DEBIAN_IMAGE]=$PUB_DEBIAN; return 0; fi
  standin_debian
  RESOLVED[DEBIAN_IMAGE]=$STANDIN
}

# version_ge A B: Go version A (go1.26.10) is B or newer.
version_ge() { [ "$(printf '%s\n%s\n' "${2#go}" "${1#go}" | sort -V | head -n1)" = "${2#go}" ]; }
# go_recent NAME: the Go in image NAME is at least the repository's (a cached golang:1.26 may be old).
go_recent() {
  local v; v=$(docker run --rm --network none --entrypoint go "$1" env GOVERSION 2>/dev/null) || return 1
  version_ge "$v" "$GO_VERSION" && return 0
  log "$1 has $v, older than $GO_VERSION"
  return 1
}

resolve_go() {
  if try_public "$PUB_GO"; then
    if go_recent "$PUB_GO"; then RESOLVED[GO_IMAGE]=$PUB_GO; return 0; fi
    if [ "$PULLS_FAILED" != 1 ] && timeout "${PULL_TIMEOUT:-120}" docker pull -q "$PUB_GO" >/dev/null 2>&1 \
      && go_recent "$PUB_GO"; then
      RESOLVED[GO_IMAGE]=$PUB_GO
      return 0
    fi
    log "no $PUB_GO with $GO_VERSION or newer: building a local stand-in"
  fi
  # Always on our own root, which has the CA bundle the runtime stage copies (bookworm-slim has not).
  # The std build cache is warmed with the Dockerfile's flags: without BuildKit cache mounts every
  # image build otherwise recompiles the standard library (about a minute on 2 cores).
  standin_debian
  local base=$STANDIN name="anyroute-local/golang:$GO_MINOR"
  local goroot; goroot=$(repo_go GOROOT)
  [ "$(GOTOOLCHAIN=local "$goroot/bin/go" env GOVERSION)" = "$GO_VERSION" ] || { log "$goroot is not $GO_VERSION"; exit 1; }
  local df
  df=$(cat <<EOF
FROM $base
COPY go /usr/local/go
ENV GOLANG_VERSION=$GO_VERSION GOTOOLCHAIN=local GOPATH=/go PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /go
RUN CGO_ENABLED=0 go build -trimpath std
EOF
)
  local h; h=$({ base_key "$base"; printf '%s' "$df"; head -c 200 "$goroot/VERSION"; } | hash_of)
  if ! up_to_date "$name" "$h"; then
    log "building $name from $goroot"
    local ctx; ctx=$(mktemp -d -p "$TMP"); printf '%s\n' "$df" >"$ctx/Dockerfile"
    tar -c -C "$ctx" Dockerfile -C "$(dirname "$goroot")" --transform "s,^$(basename "$goroot"),go," "$(basename "$goroot")" \
      | build_stream "$name" "$h"
  fi
  RESOLVED[GO_IMAGE]=$name
}

resolve_prometheus() {
  if try_public "$PUB_PROMETHEUS"; then RESOLVED[PROMETHEUS_IMAGE]=$PUB_PROMETHEUS; return 0; fi
  resolve_debian
  local base=${RESOLVED[DEBIAN_IMAGE]} name=anyroute-local/prometheus:bookworm
  # Same entrypoint, arguments, user and data dir as prom/prometheus, so compose works with either.
  local df
  df=$(cat <<EOF
FROM $base
# The UI's time zone database (moment-timezone/data, 210 MB) is skipped: tests use the API.
RUN echo 'path-exclude /usr/share/javascript/moment-timezone/data/*' >/etc/dpkg/dpkg.cfg.d/prometheus-slim \
 && apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* && mkdir -p /prometheus && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
VOLUME ["/prometheus"]
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
EOF
)
  local h; h=$({ base_key "$base"; printf '%s' "$df"; } | hash_of)
  if ! up_to_date "$name" "$h"; then
    log "building $name from Debian's prometheus package"
    printf '%s\n' "$df" | build_stream "$name" "$h"
  fi
  RESOLVED[PROMETHEUS_IMAGE]=$name
}

resolve_jaeger() {
  if try_public "$PUB_JAEGER"; then RESOLVED[JAEGER_IMAGE]=$PUB_JAEGER; return 0; fi
  resolve_debian
  # An existing binary is used as is (tools.sh may be busy holding its lock); its hash below
  # rebuilds the image whenever tools.sh replaces it.
  local bin="${TOOLS_DIR:-$ROOT/.tools}/bin/jaeger"
  if [ ! -x "$bin" ]; then
    [ -f "$ROOT/scripts/tools.sh" ] || { log "no $bin and no scripts/tools.sh to build it"; return 1; }
    bash "$ROOT/scripts/tools.sh" jaeger
  fi
  local base=${RESOLVED[DEBIAN_IMAGE]} name=anyroute-local/jaeger:2 conf="$ROOT/scripts/jaeger-config.yaml"
  # Laid out like jaegertracing/jaeger (binary path, user, JAEGER_LISTEN_HOST=0.0.0.0 so the
  # container's listeners are reachable on its network; compose publishes on 127.0.0.1 only), but
  # started with the project's config rather than the built-in one. The binary links glibc.
  local df
  df=$(cat <<'EOF'
ARG BASE
FROM $BASE
COPY jaeger /cmd/jaeger/jaeger-linux
COPY jaeger-config.yaml /cmd/jaeger/config.yaml
ENV JAEGER_LISTEN_HOST=0.0.0.0
EXPOSE 4317 4318 5778 6831/udp 6832/udp 9411 13133 14250 14268 16686
USER 10001
ENTRYPOINT ["/cmd/jaeger/jaeger-linux"]
CMD ["--config", "file:/cmd/jaeger/config.yaml"]
EOF
)
  local h; h=$({ base_key "$base"; printf '%s' "$df"; sha256sum <"$bin"; cat "$conf"; } | hash_of)
  if ! up_to_date "$name" "$h"; then
    log "building $name from $bin"
    local ctx; ctx=$(mktemp -d -p "$TMP"); printf '%s\n' "$df" >"$ctx/Dockerfile"
    tar -c -C "$ctx" Dockerfile -C "$(dirname "$bin")" jaeger -C "$(dirname "$conf")" jaeger-config.yaml \
      | build_stream "$name" "$h" --build-arg "BASE=$base"
  fi
  RESOLVED[JAEGER_IMAGE]=$name
}

resolve_siege() {
  # No public siege image is trusted: always built from our Dockerfile on whichever Debian we have.
  resolve_debian
  local base=${RESOLVED[DEBIAN_IMAGE]} name=anyroute-siege:latest dir="$ROOT/deployments/docker"
  local h; h=$({ base_key "$base"; cat "$dir/siege.Dockerfile" "$dir/siege-entrypoint.sh"; } | hash_of)
  if ! up_to_date "$name" "$h"; then
    log "building $name on $base"
    tar -c -C "$dir" siege.Dockerfile siege-entrypoint.sh \
      | build_stream "$name" "$h" -f siege.Dockerfile --build-arg "DEBIAN_IMAGE=$base"
  fi
  RESOLVED[SIEGE_IMAGE]=$name
}

# Keys resolved by an earlier run stay, so `base` after `all` does not forget the others.
write_env() {
  declare -A out=()
  local k v
  if [ -f "$ENV_FILE" ]; then
    while IFS='=' read -r k v; do
      case $k in '' | '#'*) ;; *) out[$k]=$v ;; esac
    done <"$ENV_FILE"
  fi
  for k in "${!RESOLVED[@]}"; do out[$k]=${RESOLVED[$k]}; done
  { echo "# written by deployments/docker/local-images.sh; make- and compose-env-file-includable"
    for k in "${!out[@]}"; do echo "$k=${out[$k]}"; done | sort
  } >"$ENV_FILE.tmp"
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

main() {
  command -v docker >/dev/null || { log "docker is required"; exit 1; }
  mkdir -p "$BUILD/images"
  [ $# -gt 0 ] || set -- all
  local what
  for what in "$@"; do
    case $what in
      base) resolve_go ;;
      all) resolve_go; resolve_debian; resolve_prometheus; resolve_jaeger; resolve_siege ;;
      go | debian | prometheus | jaeger | siege) "resolve_$what" ;;
      *) log "unknown target: $what"; exit 2 ;;
    esac
  done
  write_env
  cat "$ENV_FILE"
}

main "$@"
