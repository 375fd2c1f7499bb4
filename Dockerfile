# syntax=docker/dockerfile:1
# The Beast price node: one image for every role (SERVER_TYPE=APP_REPORT_SERVER or
# WEBHOOK_SERVER). Build:  docker build -t beast .
# (podman: podman build --format docker -t beast .  The OCI format has no HEALTHCHECK.)
# The base images are arguments so a build without a registry can bring its own (the
# container test makes both from Debian's package mirror); the defaults are the real ones.
ARG RUST_IMAGE=docker.io/library/rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# The workspace without .git: `beast version` names the commit given here
# (docker build --build-arg BEAST_GIT_COMMIT=$(git rev-parse --short=12 HEAD) .).
COPY . .
ARG BEAST_GIT_COMMIT=unknown
ENV BEAST_GIT_COMMIT=${BEAST_GIT_COMMIT}
# The toolchain is the one rust-toolchain.toml pins; Cargo.lock is used as committed.
RUN cargo build --release --locked -p beast-engine --bin beast \
 && install -D -m 0755 target/release/beast /out/usr/local/bin/beast \
 && install -D -m 0644 /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ca-certificates.crt \
 && install -d -m 0750 /out/data

FROM ${RUNTIME_IMAGE}
# Nothing but the binary and the CA roots (PostgreSQL's sslrootcert=system, Valkey over TLS);
# the exchange feeds carry their own roots.
COPY --from=build /out/usr/local/bin/beast /usr/local/bin/beast
COPY --from=build /out/etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build --chown=10001:10001 /out/data /data
# No shell or package manager is needed at run time, and no name in /etc/passwd: a bare UID.
USER 10001:10001
WORKDIR /data
ENV BEAST_DATA_DIR=/data \
    BEAST_LOG_FORMAT=json
VOLUME ["/data"]
# Prices (LPO) and reports (LRS) over HTTP, their health/metrics ports, the push node's
# health port, and the two UDP APIs.
EXPOSE 8080/tcp 9090/tcp 8081/tcp 9091/tcp 8083/tcp 2679/udp 2680/udp
# `beast serve` drains on SIGTERM (HTTP keep-alives closed, UDP answered until the grace ends).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/beast", "health"]
ENTRYPOINT ["/usr/local/bin/beast"]
CMD ["serve"]
