// router.yaml, the file the operator renders into a pool's router ConfigMap for the router container
// (indexer.yaml follows IndexerConfig in indexer-config.ts). The router parses it with this schema.

import { z } from 'zod';

export const RoutedModel = z.object({
  modelName: z.string(),
  criticality: z.enum(['Critical', 'Standard', 'Sheddable']),
  targetModels: z.array(z.object({ name: z.string(), weight: z.int().min(0) })),
});
export type RoutedModel = z.infer<typeof RoutedModel>;

export const RouterConfig = z.object({
  pool: z.object({
    name: z.string(),
    namespace: z.string(),
    selector: z.record(z.string(), z.string()),
    targetPort: z.int().min(1).max(65535),
  }),
  servedModelName: z.string(),
  failureMode: z.enum(['FailOpen', 'FailClose']),
  loadBound: z.number().gte(1),
  sessionAffinity: z.object({ enabled: z.boolean(), header: z.string() }),
  scorerWeights: z.object({ prefixCache: z.int(), queueDepth: z.int(), kvCacheUtilization: z.int() }),
  indexer: z.object({ grpcAddress: z.string() }),
  models: z.array(RoutedModel),
});
export type RouterConfig = z.infer<typeof RouterConfig>;
