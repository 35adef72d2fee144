// The indexer's client surface: what another component (the router) may use to ask for prefix scores,
// in process or over gRPC. Everything else under src/indexer is internal (ADR 0009).

export type { PrefixScorer, ScoreRequest, ScoreResult } from './types.ts';
export { createIndexerClient } from './grpc/client.ts';
