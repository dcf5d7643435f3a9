# Stand-in for jaegertracing/jaeger: the Jaeger v2 binary scripts/tools.sh builds from its Go module
# (it links glibc, hence the Debian stand-in), laid out like the public image (binary path, user,
# JAEGER_LISTEN_HOST=0.0.0.0 so its listeners are reachable on the container's network; compose
# publishes on 127.0.0.1 only), started with the project's scripts/jaeger-config.yaml. The web UI's
# assets are not in the module: the API works, the UI page is a placeholder.
ARG BASE
FROM ${BASE}
COPY jaeger /cmd/jaeger/jaeger-linux
COPY jaeger-config.yaml /cmd/jaeger/config.yaml
ENV JAEGER_LISTEN_HOST=0.0.0.0
EXPOSE 4317 4318 5778 6831/udp 6832/udp 9411 13133 14250 14268 16686
USER 10001
ENTRYPOINT ["/cmd/jaeger/jaeger-linux"]
CMD ["--config", "file:/cmd/jaeger/config.yaml"]
