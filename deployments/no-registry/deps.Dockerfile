# The Go stand-in plus the build cache of the anyroute binary's dependencies for one architecture
# (images.sh builds it as anyroute-local/golang-deps:MINOR-ARCH, and the anyroute image's build
# stage starts from it). Without BuildKit's cache mounts, every image build would compile each
# dependency again (minutes on 2 cores, for amd64 and again for arm64); built here once per set of
# dependencies, with deployments/docker/Dockerfile's flags (-trimpath, tag nodoctor, CGO_ENABLED=0,
# -mod=vendor), a build of a changed service compiles only the service's own packages.
# The build context: go.mod, go.sum, vendor/ and deps.txt (the packages, one per line).
ARG GO_IMAGE
FROM ${GO_IMAGE}
ARG TARGETARCH
WORKDIR /src
COPY . .
# /src goes in the same step: the anyroute build copies its own sources, which must find no stale
# vendored file here. The cache stays, in /root/.cache/go-build.
RUN CGO_ENABLED=0 GOFLAGS=-mod=vendor GOARCH=${TARGETARCH} go build -trimpath -tags nodoctor std $(cat deps.txt) \
 && rm -rf /src
