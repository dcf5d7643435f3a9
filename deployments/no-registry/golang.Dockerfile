# Stand-in for golang:MINOR: the Debian stand-in plus the Go toolchain this repository selects,
# laid out like the golang image. The build context is that GOROOT, as go/ (images.sh makes it).
ARG BASE
FROM ${BASE}
COPY go /usr/local/go
ENV GOTOOLCHAIN=local GOPATH=/go PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /go
# The standard library's build cache, warmed with deployments/docker/Dockerfile's flags: without
# BuildKit's cache mounts every image build would compile it again (about a minute on 2 cores).
RUN CGO_ENABLED=0 go build -trimpath std
