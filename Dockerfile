# syntax=docker/dockerfile:1
#
# One image with every HAVEN binary: the five services, `migrate`,
# `haven-deploy`, the operator's `havenctl` and the local payout stand-in. Each container picks its
# binary with its command (see docker-compose.yml and k8s/).
#
#   docker build -t haven .                  # the runtime image (last stage)
#   docker build --target anvil -t haven-anvil .   # local chain for compose
#
# Stages: chef (toolchain + cargo-chef) -> planner (dependency recipe) ->
# builder (dependencies cooked in their own layer, then the workspace) ->
# runtime (Debian slim, non-root, HEALTHCHECK on /health).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS chef
# Pinned so an image rebuild does not pick up a different recipe format.
RUN cargo install cargo-chef --locked --version 0.1.77
WORKDIR /app

# The recipe lists only manifests and the lockfile: it changes when a
# dependency changes, not when source code does, so the cooked layer below
# stays cached across code-only rebuilds.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# The packages whose binaries the image ships.
ARG PACKAGES="-p webhook-ingress -p reward-calculator -p chain-minter -p redemption-payout -p read-api -p haven-migrations -p haven-deploy -p havenctl"
COPY --from=planner /app/recipe.json recipe.json
# shellcheck disable=SC2086 # PACKAGES is a list of flags on purpose
RUN cargo chef cook --release --locked --bins ${PACKAGES} --recipe-path recipe.json
COPY . .
# shellcheck disable=SC2086
RUN cargo build --release --locked --bins ${PACKAGES} \
 && mkdir -p /out \
 && cp target/release/webhook-ingress target/release/reward-calculator \
       target/release/chain-minter target/release/redemption-payout \
       target/release/haven-payout-stand-in target/release/read-api \
       target/release/migrate target/release/haven-deploy \
       target/release/haven-custody-xpub target/release/havenctl /out/

# Local development chain for docker-compose: anvil from the npm package the
# workspace pins in package-lock.json (the same one `cargo xtask up` runs).
FROM node:20-${DEBIAN_RELEASE}-slim AS anvil
WORKDIR /opt/haven
COPY package.json package-lock.json ./
# The native binary of the platform package (not the node wrapper), so
# SIGTERM reaches anvil itself. Install scripts are not needed and not run.
RUN npm ci --no-audit --no-fund --ignore-scripts \
 && ln -s "$(echo /opt/haven/node_modules/@foundry-rs/anvil-linux-*/bin/anvil)" /usr/local/bin/anvil \
 && anvil --version
# The node image's unprivileged `node` user.
USER 1000:1000
EXPOSE 8545
ENTRYPOINT ["anvil"]
CMD ["--host", "0.0.0.0", "--port", "8545", "--chain-id", "31337", "--block-time", "1"]

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates: TLS to a hosted RPC, broker or database; curl: the
# HEALTHCHECK. Nothing else: the binaries link only glibc.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 haven \
 && useradd --system --uid 10001 --gid haven --no-create-home --shell /usr/sbin/nologin haven \
 && install -d -o haven -g haven /var/lib/haven /var/lib/haven/chain
COPY --from=builder /out/ /usr/local/bin/
# Numeric, so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/haven
ENV LOG_FORMAT=json \
    HTTP_HOST=0.0.0.0
# Every service answers GET /health on $PORT (compose and k8s set PORT for
# each one; 8080 is webhook-ingress's default). The one-shot containers
# (migrate, haven-deploy) turn the check off. Shell form on purpose: $PORT.
# hadolint ignore=DL3025
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS --max-time 2 "http://127.0.0.1:${PORT:-8080}/health" > /dev/null || exit 1
EXPOSE 8080 8081 8082 8083 8084
# Containers name the binary they run; plain `docker run haven` starts
# webhook-ingress.
CMD ["webhook-ingress"]
