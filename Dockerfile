# The one kvroute image: operator, indexer, router and simulator are subcommands of `kvroute`.
# Node 24 runs the TypeScript sources directly (docs/adr/0000-runtime-and-modules.md).
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only; the prebuilt native modules (zeromq) need no install scripts.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
USER 65532:65532
ENTRYPOINT ["node", "/app/bin/kvroute.js"]
