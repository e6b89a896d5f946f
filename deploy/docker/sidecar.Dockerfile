# syntax=docker/dockerfile:1
# The pgflip sidecar image: the `pgflip` binary on a distroless base (glibc, CA
# certificates, no shell), run as a non-root user. Build from the repository's root:
#
#     docker build -f deploy/docker/sidecar.Dockerfile -t registry.example.com/pgflip/sidecar:0.1.0 .
#
# The pod runs `pgflip proxy --config /etc/pgflip/proxy.toml` (deploy/kubernetes).

# The toolchain: Cargo.toml's rust-version or newer. bookworm, so that the binary's glibc
# matches the runtime's (distroless cc-debian12 is Debian 12, bookworm).
ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# --locked: exactly the versions of Cargo.lock. The caches keep the registry and the build
# between runs; the binary is copied out of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin pgflip \
    && install -m 0755 target/release/pgflip /usr/local/bin/pgflip

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/pgflip /usr/local/bin/pgflip
# The distroless "nonroot" user; the Deployment asks for the same UID (runAsNonRoot needs
# a numeric one).
USER 65532:65532
# 6432: the application's listener (loopback in the pod); 9187: the admin API.
EXPOSE 6432 9187
ENTRYPOINT ["/usr/local/bin/pgflip"]
CMD ["proxy", "--config", "/etc/pgflip/proxy.toml"]
