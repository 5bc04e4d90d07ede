# syntax=docker/dockerfile:1
# One image with both binaries: `spate-broker` (default command) and `spate-operator`.
# Targets: `broker` (default, last stage) and `operator` (same image, operator command).
#   docker build -t spate:0.1.0 .
#   docker build --target operator -t spate-operator:0.1.0 .
# Keep `target/` out of the build context (a .dockerignore with `target`), or the context is
# several GB.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p spate-broker -p spate-operator \
    && mkdir -p /out \
    && cp target/release/spate-broker target/release/spate-operator /out/

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 spate \
    && useradd --system --uid 10001 --gid spate --home-dir /var/lib/spate \
       --shell /usr/sbin/nologin spate \
    && mkdir -p /var/lib/spate /etc/spate \
    && chown spate:spate /var/lib/spate
COPY --from=build /out/spate-broker /out/spate-operator /usr/local/bin/
USER 10001:10001
WORKDIR /var/lib/spate
# Kafka, metadata quorum (raft), broker HTTP, operator HTTP.
EXPOSE 9092 9093 9644 8080
CMD ["spate-broker"]

FROM runtime AS operator
CMD ["spate-operator"]

FROM runtime AS broker
CMD ["spate-broker"]
