# opam-edge: the edge of opam.ocaml.org (TLS with its own ACME certificates, HTTP-01
# challenges with peer fallback, HTTP->HTTPS redirect, re-resolving reverse proxy).
#
#   docker build -t opam-edge --build-arg REVISION="$(git rev-parse HEAD)" .
#   docker run -p 80:80 -p 443:443 -v /etc/opam-edge:/etc/opam-edge:ro \
#     -v opam-edge-storage:/var/lib/opam-edge opam-edge
#
# deploy/ has the swarm stack, a compose file and example configs.

# The base image is pinned to the exact Node.js version of the `node` devDependency in
# package.json (what `npm start` and `npm test` run): the code relies on Node internals
# (tls.Server's _sharedCreds, a socket's _httpMessage; test/contracts/ checks them). To move
# to a newer Node, change both together, then run `npm ci && npm test` and container-check:
#   npm install -D -E node@24.X.Y   and every FROM below -> node:24.X.Y-bookworm-slim
# (test/deploy.test.ts fails while they differ).

# Build: all dependencies (typescript), then tsc emits dist/. --ignore-scripts: the `node`
# devDependency would download a second Node binary that this image already has.
FROM node:24.21.0-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY src/ ./src/
RUN npm run build

# Production dependencies only, resolved from the lockfile. None of them has an install
# script, so none runs. Only node_modules leaves this stage (no npm cache in the image).
FROM node:24.21.0-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:24.21.0-bookworm-slim
ARG VERSION=0.1.0
ARG REVISION=""
LABEL org.opencontainers.image.title="opam-edge" \
      org.opencontainers.image.description="The edge of opam.ocaml.org in one Node.js process: TLS with built-in ACME, HTTP-01 challenges with peer fallback, HTTP->HTTPS redirect, re-resolving keep-alive reverse proxy." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="ISC" \
      org.opencontainers.image.base.name="docker.io/library/node:24.21.0-bookworm-slim"
ENV NODE_ENV=production
# The JavaScript tsc emitted, production dependencies, the bin and package.json (the
# version). Files stay root-owned, so the process cannot change them.
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist/ ./dist/
COPY package.json ./
COPY bin/ ./bin/
# ACME storage belongs to the node user. A new named volume mounted here starts with this
# directory's owner, so it is writable without a chown step at deploy time. `opam-edge` on
# PATH, so `docker exec CONTAINER opam-edge status` (or check) works as on a host.
RUN install -d -o node -g node -m 0700 /var/lib/opam-edge \
 && install -d -m 0755 /etc/opam-edge \
 && ln -s /app/bin/opam-edge.js /usr/local/bin/opam-edge

# Not root. Ports 80 and 443 still bind: in the container's own network namespace Docker
# (20.10 and later) and Podman set net.ipv4.ip_unprivileged_port_start=0. With host
# networking that is not so: see deploy/README.md, "Ports 80 and 443 as a non-root user".
USER node
EXPOSE 80 443
# SIGTERM drains: stop accepting, finish in-flight requests for up to 30 s, exit 0. Give the
# container a stop timeout above that (stop_grace_period: 35s in deploy/).
STOPSIGNAL SIGTERM
# No curl in the image: node itself checks the admin listener's /healthz when the config
# sets `admin`, otherwise that the first http (or https) listener accepts connections.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "/app/dist/healthcheck.js"]
# A 2 MB young generation (V8's default grows to 16 MB per semi-space): body buffers die
# young and are freed at once; 100 KiB responses cost a third less CPU and the peak RSS
# is 60-70 MB lower (bench/README.md, "What was tuned"). A flag here rather than in
# NODE_OPTIONS, which Node ignores for a binary with file capabilities (deploy/README.md);
# cluster workers inherit it.
ENTRYPOINT ["node", "--max-semi-space-size=2", "/app/dist/cli.js"]
CMD ["--config", "/etc/opam-edge/config.yaml"]
