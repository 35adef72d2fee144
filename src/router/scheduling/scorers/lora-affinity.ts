// GIE's lora-affinity-scorer: prefer an endpoint already running the request's LoRA adapter, then one
// with room to load it, then one where it is queued to load; an endpoint at its adapter limit scores 0.
// Applies only to requests for an adapter; abstains for endpoints without fresh metrics.

import { z } from 'zod';
import type { EndpointMetrics } from '../../types.ts';
import { definePlugin, type ScoreVector } from '../types.ts';

/** The score of one endpoint for `adapter`, from vllm:lora_requests_info. */
export function loraAffinityScore(metrics: EndpointMetrics, adapter: string): number {
  if (metrics.runningLoras.includes(adapter)) return 1;
  if (metrics.runningLoras.length + metrics.waitingLoras.length < metrics.maxLoras) return 0.8;
  if (metrics.waitingLoras.includes(adapter)) return 0.6;
  return 0;
}

export const loraAffinityScorer = definePlugin({
  type: 'lora-affinity-scorer',
  kind: 'scorer',
  parameters: z.strictObject({}),
  create: (name) => ({
    kind: 'scorer',
    type: 'lora-affinity-scorer',
    name,
    score: (cycle, endpoints): ScoreVector | null => {
      const adapter = cycle.request.loraName;
      if (!adapter) return null;
      return endpoints.map((e) => (e.metrics ? loraAffinityScore(e.metrics, adapter) : null));
    },
  }),
});
