// The Gateway API Inference Extension's InferencePool (inference.networking.k8s.io/v1) as kvroute reads
// it: the selector and target ports of a pool that a kvroute pool refers to (spec.poolRef). Only the
// fields read are checked; the rest of a GIE pool is GIE's to validate.

import { z } from 'zod';
import { LabelKey, LabelValue } from './meta.ts';

const GIE_POOL_API_VERSION = 'inference.networking.k8s.io/v1';

const GieInferencePoolSpec = z.object({
  selector: z.object({
    matchLabels: z.record(LabelKey, LabelValue).refine((m) => Object.keys(m).length >= 1, { message: 'expected at least one label' }),
  }),
  targetPorts: z
    .array(z.object({ number: z.int().min(1).max(65535) }))
    .min(1)
    .max(8),
});

export const GieInferencePool = z.object({
  apiVersion: z.literal(GIE_POOL_API_VERSION),
  kind: z.literal('InferencePool'),
  metadata: z.object({ name: z.string(), namespace: z.string().optional() }),
  spec: GieInferencePoolSpec,
});
export type GieInferencePool = z.infer<typeof GieInferencePool>;
