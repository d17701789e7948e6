# syntax=docker/dockerfile:1
# envmon container image: multi-stage build, small runtime, non-root.
#
#   docker build -t envmon:0.1.0 .
#   docker run --rm envmon:0.1.0 check-config --config /etc/envmon/envmon.toml
#
# Used by deploy/compose.yaml and deploy/k8s. See deploy/README.md (including whether this was
# built here: no Docker engine runs on the project's build host).

# ---- build -----------------------------------------------------------------------------------
# Cargo.toml's rust-version is 1.89 (what the locked dependencies need: uuid 1.29, config
# 0.15.27, ...); pinned here to the toolchain the project is built and tested with.
# Debian 12 like the runtime, so glibc matches.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Only what the build needs (.dockerignore keeps target/, .git and data out of the context).
COPY Cargo.toml Cargo.lock README.md ./
COPY src ./src
COPY benches ./benches
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin envmon \
    && install -D -m 0755 target/release/envmon /out/envmon \
    && install -d -m 0750 /out/state

# A static busybox only for the HEALTHCHECK's wget (the runtime image has no shell).
FROM busybox:1.36-musl AS busybox

# ---- runtime ---------------------------------------------------------------------------------
# distroless "cc": glibc, libgcc, CA certificates, no shell or package manager; the ":nonroot"
# tag runs as uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/envmon /usr/local/bin/envmon
COPY --from=busybox /bin/busybox /busybox/busybox
COPY deploy/container/envmon.toml /etc/envmon/envmon.toml
COPY config/stations.toml config/targets.toml config/alerts.toml /etc/envmon/
# The only writable path: dead-letter files and indicator state (mount a volume here).
COPY --from=build --chown=65532:65532 /out/state /var/lib/envmon
USER 65532:65532
WORKDIR /var/lib/envmon
VOLUME ["/var/lib/envmon"]
# HTTP: /healthz, /readyz, /metrics and the API; 9010: HJ 212 loggers when hj212.listen is set.
EXPOSE 9090 9010
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/busybox/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:9090/readyz"]
ENTRYPOINT ["/usr/local/bin/envmon"]
CMD ["run", "--config", "/etc/envmon/envmon.toml"]
