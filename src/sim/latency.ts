// The simulated engine's time model: how long one scheduler step takes for the work scheduled in
// it, and the fixed per-request front-end cost paid before a request reaches the scheduler.
// Defaults are calibrated to the reference deployment: a cold ~4,000-token prompt reaches its first
// token in about 2,850 ms and a fully cached one in about 340 ms (see docs/adr/0006-simulator.md).

export interface LatencyModel {
  /** Front-end cost (API server, tokenization, engine hand-off) before a request can be scheduled. */
  frontendOverheadMs: number;
  /** Fixed cost of every forward pass. */
  stepBaseMs: number;
  /** Cost per prompt token computed (prefill). */
  prefillMsPerToken: number;
  /** Cost per sequence decoding one token in the step; makes decode slower under load. */
  decodeMsPerSeq: number;
}

export const DEFAULT_LATENCY: LatencyModel = {
  frontendOverheadMs: 320,
  stepBaseMs: 10,
  prefillMsPerToken: 0.63,
  decodeMsPerSeq: 0.35,
};

/** Duration of one step that computes `prefillTokens` prompt tokens and decodes `decodeSeqs` tokens. */
export function stepDurationMs(model: LatencyModel, prefillTokens: number, decodeSeqs: number): number {
  return model.stepBaseMs + prefillTokens * model.prefillMsPerToken + decodeSeqs * model.decodeMsPerSeq;
}
