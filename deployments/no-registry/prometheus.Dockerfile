# Stand-in for prom/prometheus: Debian's prometheus package on the Debian stand-in, with the same
# entrypoint, arguments, user and data directory, so compose and the tests run either.
ARG BASE
FROM ${BASE}
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
