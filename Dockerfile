# syntax=docker/dockerfile:1
# Multi-stage build: a Rust builder, then a small non-root runtime running `atomicseats all`.

FROM rust:1.95-slim-bookworm AS builder
# librdkafka is built from source (make, perl); lettre's TLS links the system OpenSSL.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential perl pkg-config libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so they stay cached while only our code changes.
COPY Cargo.toml Cargo.lock rust-toolchain.toml ./
RUN mkdir -p src tests/api migrations \
    && mkdir -p benches && echo 'fn main() {}' > src/main.rs && echo 'fn main() {}' > benches/flash_sale.rs \
    && touch src/lib.rs tests/api/main.rs \
    && cargo build --release --locked --bin atomicseats \
    && rm -rf src tests benches
COPY . .
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin atomicseats

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin atomicseats
WORKDIR /app
COPY --from=builder /src/target/release/atomicseats /usr/local/bin/atomicseats
COPY config ./config
ENV ATOMICSEATS_ENV=production \
    ATOMICSEATS_CONFIG_DIR=/app/config
USER atomicseats
EXPOSE 3000
# SIGTERM stops it gracefully (in-flight requests and batches finish).
STOPSIGNAL SIGTERM
ENTRYPOINT ["atomicseats"]
CMD ["all"]
