# Load generator for the compose stack and the autoscaling demo: siege from Debian's archive.
#   docker build -f deployments/docker/siege.Dockerfile -t anyroute-siege:latest deployments/docker
# (where no registry answers, deployments/no-registry builds it on its Debian stand-in through
# DEBIAN_IMAGE).
ARG DEBIAN_IMAGE=debian:bookworm-slim
FROM ${DEBIAN_IMAGE}

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends siege \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --create-home --home-dir /home/siege siege

# Run through sh so the script needs no exec bit from the build context.
COPY siege-entrypoint.sh /usr/local/bin/siege-entrypoint.sh

USER 10001:10001
WORKDIR /home/siege
ENV SIEGE_CONCURRENCY=5 SIEGE_DELAY=1
LABEL org.opencontainers.image.title="anyroute-siege" \
      org.opencontainers.image.description="siege load generator driven by SIEGE_URLS" \
      org.opencontainers.image.source="https://github.com/anyroute/anyroute"
ENTRYPOINT ["/bin/sh", "/usr/local/bin/siege-entrypoint.sh"]
