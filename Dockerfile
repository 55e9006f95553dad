# syntax=docker/dockerfile:1.7
# One image for every Kefu service: /usr/local/bin/kefu-<service> (+ the kefu CLI). One build
# and one set of layers for the whole mesh, versions that always match, and the chart picks the
# binary with `command:`. The services share nearly all their dependencies (one workspace, one
# build), so per-service images would mostly repeat the same build. Image sizes were not
# measured here (no registry to pull the base images from).

FROM rust:1.95-bookworm AS build
# librdkafka (built from source by rdkafka-sys) needs cmake-less make, perl, and OpenSSL
# headers for TLS/SASL to the brokers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev perl make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins \
 && mkdir -p /out \
 && for b in kefu kefu-session-router kefu-translation kefu-intent-classifier kefu-assistant \
             kefu-ticket kefu-order-sync kefu-knowledge kefu-metrics kefu-intent; do \
      cp target/release/$b /out/; \
    done

# distroless/cc: glibc, libgcc, OpenSSL and CA certificates; no shell, no package manager.
# The nonroot variant runs as uid 65532, matching the chart's securityContext.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
# The chart sets each service's listen addresses (0.0.0.0) and picks its binary with `command:`.
ENV KEFU_LOG_FORMAT=json
EXPOSE 50051 8080 9181
ENTRYPOINT ["/usr/local/bin/kefu-session-router"]
