# syntax=docker/dockerfile:1
# The pgflip controller image: the `pgflip` binary, PostgreSQL's client programs (pg_dump,
# pg_restore and pg_dumpall for the snapshot, restore and promote phases; psql), sh and
# bash for the plan's migrate, smoke and retire commands, and the example's migrations and
# smoke test (seeds/, at /opt/pgflip/seeds). Non-root. Build from the repository's root:
#
#     docker build -f deploy/docker/controller.Dockerfile -t registry.example.com/pgflip/controller:0.1.0 .
#
# The Job runs `pgflip cutover --plan /etc/pgflip/plan.toml ACTION` (deploy/kubernetes/controller).
# For your own application, replace the COPY of seeds/ with your migrations and smoke test
# (or build FROM this image and add them).

ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin pgflip \
    && install -m 0755 target/release/pgflip /usr/local/bin/pgflip

FROM debian:bookworm-slim
# The client programs' major version must be at least blue's (pg_dump refuses a newer
# server), best green's (PostgreSQL recommends the newer server's pg_dump). They come from the PostgreSQL project's Debian repository (apt.postgresql.org),
# which has every supported major version for bookworm.
ARG PG_MAJOR=17
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl bash; \
    install -d /usr/share/postgresql-common/pgdg; \
    curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc \
        https://www.postgresql.org/media/keys/ACCC4CF8.asc; \
    echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" \
        > /etc/apt/sources.list.d/pgdg.list; \
    apt-get update; \
    apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}"; \
    apt-get purge -y --auto-remove curl; \
    rm -rf /var/lib/apt/lists/*; \
    for tool in pg_dump pg_restore pg_dumpall psql; do \
        "/usr/lib/postgresql/${PG_MAJOR}/bin/$tool" --version; \
    done
# The programs of that version first on PATH (psql and the plan's commands; the controller
# finds them there and in /usr/lib/postgresql/*/bin, and names its choice).
ENV PATH="/usr/lib/postgresql/${PG_MAJOR}/bin:${PATH}"

COPY --from=build /usr/local/bin/pgflip /usr/local/bin/pgflip
# The example's migrations and smoke test, which the example plan's [migrate] and [smoke]
# run (deploy/kubernetes/base/controller-plan.toml).
COPY seeds/ /opt/pgflip/seeds/

# A non-root user with the UID the Job asks for.
RUN groupadd --system --gid 65532 pgflip \
    && useradd --system --uid 65532 --gid 65532 --home-dir /var/lib/pgflip --no-create-home --shell /usr/sbin/nologin pgflip \
    && install -d -o 65532 -g 65532 /var/lib/pgflip
USER 65532:65532
WORKDIR /var/lib/pgflip
# 9188: the plan's [metrics] listen.
EXPOSE 9188
ENTRYPOINT ["/usr/local/bin/pgflip"]
CMD ["cutover", "--plan", "/etc/pgflip/plan.toml", "status"]
