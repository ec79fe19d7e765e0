# triggered-cache container image.
#
#   docker build -t triggered-cache .        (or: podman build --format docker ...)
#   docker run --read-only --cap-drop ALL \
#     -e TRIGGERED_CACHE__AWS__REGION=... -e TRIGGERED_CACHE__SQS__QUEUE_URL=... \
#     -e TRIGGERED_CACHE__SQS__DLQ_URL=... -e TRIGGERED_CACHE__DYNAMODB__TABLE=... \
#     -e TRIGGERED_CACHE__SNS__TOPIC_ARN=... -p 9090:9090 triggered-cache
#
# Runtime contract:
#   binary   /usr/local/bin/triggered-cache (ENTRYPOINT), subcommand `run` (CMD)
#   config   /etc/triggered-cache/config.toml (TRIGGERED_CACHE_CONFIG); every key
#            is overridable by TRIGGERED_CACHE__SECTION__KEY variables
#   port     9090/tcp: GET /healthz (liveness), /readyz (readiness), /metrics
#   user     65532:65532 (nonroot), no shell; read-only root filesystem is fine
#   stop     SIGTERM drains (worker.shutdown_grace, 30s) and exits 0: give the
#            orchestrator a grace period above that (60s in deploy/)
#   health   /usr/local/bin/triggered-cache healthcheck [URL] (default
#            http://127.0.0.1:9090/healthz; reads no configuration)
#
# The base images are fully qualified and pinned by digest. They are build
# arguments only so that an offline CI can substitute local stand-ins
# (scripts/verify-deploy.sh); a normal build uses these defaults. The builder's
# glibc (Debian 12) must not be newer than the runtime's (Debian 12).
ARG BUILDER_IMAGE=docker.io/library/rust:1.95.0-slim-bookworm@sha256:d7482085ff5b415f84dba5647ae71606650bdef00db7aeb69f4b3d170c3e4082
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f

# ---------------------------------------------------------------------------
FROM ${BUILDER_IMAGE} AS builder
WORKDIR /src

# Dependencies first, in a layer of their own: it is rebuilt only when
# Cargo.toml or Cargo.lock change. The placeholders stand for the crate's lib
# and bin targets and are removed (with what was built from them) afterwards.
# The benchmark's floor (benches/floor.rs, a [[bench]] in Cargo.toml) stays
# a placeholder: the manifest names it, the image never builds it.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src benches \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > benches/floor.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src target/release/triggered-cache target/release/triggered-cache.d \
        target/release/deps/triggered_cache-* target/release/deps/libtriggered_cache-* \
        target/release/.fingerprint/triggered-cache-*

# The crate itself (touch: the sources must be newer than the placeholders).
# The release profile is fat LTO (Cargo.toml): this step's final link
# optimises the whole program at once (~4.5 minutes on 2 cores).
COPY src ./src
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && mkdir -p /out \
    && install -m 0755 target/release/triggered-cache /out/triggered-cache

# ---------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
ARG RUNTIME_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="triggered-cache" \
      org.opencontainers.image.description="Worker daemon: SQS requests in, DynamoDB item cache, SNS completion events out" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}" \
      io.triggered-cache.config="/etc/triggered-cache/config.toml" \
      io.triggered-cache.port="9090"

COPY --from=builder /out/triggered-cache /usr/local/bin/
COPY deploy/docker/config.toml /etc/triggered-cache/config.toml
ENV TRIGGERED_CACHE_CONFIG=/etc/triggered-cache/config.toml

USER 65532:65532
EXPOSE 9090
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/triggered-cache", "healthcheck", "http://127.0.0.1:9090/healthz"]
ENTRYPOINT ["/usr/local/bin/triggered-cache"]
CMD ["run"]
