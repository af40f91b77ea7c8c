# syntax=docker/dockerfile:1
#
# cloner-worker image: both binaries (`cloner-worker`, `exchange-simulator`) on Debian bookworm,
# run as a non-root user, configured by environment only (CLONER__TABLE__KEY; the defaults are
# compiled into the binary, see config/default.toml). Build and run:
#
#   docker build -t cloner-worker .
#   docker compose up            # Kafka, topics, the exchange simulator, two workers
#
# The image's toolchain is pinned to the one the project is built and tested with; it must stay
# at or above Cargo.toml's rust-version (tests/it/container.rs checks that).
ARG RUST_VERSION=1.95

# --- build -----------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-bookworm AS builder

# librdkafka is built from source by rdkafka-sys (its ./configure and make, not cmake), with the
# `ssl` feature and zlib linked from the system:
#   g++               librdkafka's configure requires a C++ compiler (gcc is in the base image)
#   make              runs librdkafka's build
#   pkg-config        how configure, openssl-sys and libz-sys find OpenSSL and zlib
#   libssl-dev        OpenSSL headers (the `ssl` feature; linked dynamically: libssl3 at run time)
#   zlib1g-dev        zlib headers (rdkafka-sys's default `libz` feature)
# Version pins would break whenever bookworm's archive moves on; the suite is the pin.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ make pkg-config libssl-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY config ./config
COPY src ./src
COPY benches ./benches

# The registry and target directories are BuildKit cache mounts: a rebuild after a source change
# recompiles the crate, not librdkafka and every dependency. Cache mounts are not part of the
# image, so the binaries are copied out of target/ in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins \
    && mkdir -p /out \
    && cp target/release/cloner-worker target/release/exchange-simulator /out/

# --- run -------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# What the binaries link dynamically (ldd): libssl3 and libcrypto (libssl3) and zlib1g, besides
# libc and libgcc_s, which the base has. ca-certificates: librdkafka's TLS to a broker verifies
# against the system store (the HTTP client carries its own roots). bash, which the base has,
# runs the compose healthchecks (/dev/tcp): the image needs no curl.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl3 zlib1g ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 cloner \
    && useradd --uid 10001 --gid cloner --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin cloner

COPY --from=builder /out/cloner-worker /out/exchange-simulator /usr/local/bin/

# Numeric, so that a runtime that insists on a non-root uid (Kubernetes runAsNonRoot) can see it.
USER 10001:10001

# No config file: every key comes from the embedded defaults or the environment.
ENV RUST_LOG=info,actix_server=warn

# /metrics and /health (http.listen, CLONER__HTTP__LISTEN).
EXPOSE 9464

# `serve` drains on SIGTERM within consumer.drain_grace_ms (30 s by default): give containers a
# stop timeout above that (compose.yaml: stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["cloner-worker"]
CMD ["serve"]
