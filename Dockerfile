# The one kvroute image: operator, router, indexer, simulator and demo are subcommands of `kvroute`.
# Node 24 runs the TypeScript sources directly (docs/adr/0000-runtime-and-modules.md), so there is no
# build step: production dependencies, package.json (ESM), bin/ and src/ (with the .proto files the
# gRPC servers load at run time). e2e/image.test.ts assembles the COPY lines below without Docker and
# runs every subcommand from the result.

# Production dependencies only. zeromq ships prebuilt native addons for linux-x64/arm64 glibc, so no
# install script (and no compiler) is needed.
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# The application tree, owned by root and readable (not writable) by every UID: OpenShift runs the
# container as an arbitrary UID in group 0, elsewhere it runs as 65532.
FROM node:24-bookworm-slim AS app
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
RUN chmod -R a+rX,go-w /app

FROM node:24-bookworm-slim
ENV NODE_ENV=production
# Nothing writes to the (read-only) root filesystem; HOME points at /tmp, the pods' writable emptyDir.
ENV HOME=/tmp
WORKDIR /app
COPY --from=app /app /app
# Numeric, so runAsNonRoot can be verified without a passwd lookup; group 0 for OpenShift.
USER 65532:0
ENTRYPOINT ["node", "/app/bin/kvroute.js"]
