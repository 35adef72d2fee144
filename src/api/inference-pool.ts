// The InferencePool custom resource: the model a pool serves, the optional vLLM servers the operator
// runs for it, the pods it selects, and how its router, indexer and gateway wiring are configured.

import { z } from 'zod';
import { Conditions, LabelMap, ObjectMeta, ResourceRequirements } from './meta.ts';

const Name = z.string().min(1).max(253);
const Port = z.int().min(1).max(65535);

export const ModelSpec = z.object({
  name: z.string().min(1).max(512).meta({ description: 'model vLLM loads: a Hugging Face repo id or a path in the image' }),
  servedName: z.string().min(1).max(512).optional().meta({ description: 'name clients send in requests; defaults to name' }),
  tokenizer: z
    .string()
    .max(1024)
    .regex(/^(npm|tiktoken|dir):.+$/)
    .optional()
    .meta({ description: 'tokenizer source for the indexer: npm:<package>, tiktoken:<encoding> or dir:<path>' }),
});

export const EnvVar = z.object({
  name: z.string().min(1).max(256),
  value: z.string().max(32768).optional(),
  valueFrom: z.record(z.string(), z.unknown()).optional().meta({ 'x-kubernetes-preserve-unknown-fields': true, type: 'object' }),
});
export type EnvVar = z.infer<typeof EnvVar>;

export const Toleration = z.object({
  key: z.string().max(317).optional(),
  operator: z.enum(['Exists', 'Equal']).optional(),
  value: z.string().max(63).optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
  tolerationSeconds: z.int().optional(),
});
export type Toleration = z.infer<typeof Toleration>;

export const SecretKeyRef = z.object({
  name: Name,
  key: z.string().min(1).max(253).default('token'),
});

export const ModelServerSpec = z.object({
  image: z.string().min(1).max(1024),
  replicas: z.int().min(0).max(1024).default(1),
  port: Port.default(8000),
  resources: ResourceRequirements.optional(),
  blockSize: z.int().min(1).max(1024).default(16).meta({ description: 'tokens per KV-cache block (--block-size)' }),
  gpuMemoryUtilization: z.number().gt(0).lte(1).default(0.7),
  maxModelLen: z.int().min(1).optional(),
  kvCacheDtype: z.string().max(64).regex(/^[a-z0-9_]+$/).default('auto'),
  hashSeed: z
    .string()
    .max(64)
    .optional()
    .meta({ description: 'PYTHONHASHSEED for vLLM and the indexer; unset means vLLM\'s fixed default seed for sha256_cbor' }),
  extraArgs: z.array(z.string().max(4096)).max(64).optional(),
  env: z.array(EnvVar).max(64).optional(),
  hfTokenSecretRef: SecretKeyRef.optional(),
  nodeSelector: z.record(z.string().max(317), z.string().max(63)).optional(),
  tolerations: z.array(Toleration).max(64).optional(),
});
export type ModelServerSpec = z.infer<typeof ModelServerSpec>;

export const ScorerWeights = z.object({
  prefixCache: z.int().min(0).max(100).default(3),
  queueDepth: z.int().min(0).max(100).default(2),
  kvCacheUtilization: z.int().min(0).max(100).default(2),
});

export const RouterSpec = z.object({
  replicas: z.int().min(0).max(64).default(1),
  image: z.string().min(1).max(1024).optional().meta({ description: 'kvroute image for the router and indexer; defaults to the operator\'s' }),
  schedulingProfile: z
    .object({ scorerWeights: ScorerWeights.prefault({}) })
    .prefault({}),
  loadBound: z.number().gte(1).lte(10).default(1.25).meta({ description: 'a pod may take at most this factor of the mean load' }),
  sessionAffinity: z
    .object({ enabled: z.boolean().default(false), header: z.string().min(1).max(256).default('x-session-id') })
    .prefault({}),
  failureMode: z.enum(['FailOpen', 'FailClose']).default('FailClose'),
});
export type RouterSpec = z.infer<typeof RouterSpec>;

export const IndexerSpec = z.object({
  maxBlocks: z.int().min(1024).max(1_000_000_000).default(10_000_000).meta({ description: 'block keys the index holds before evicting' }),
  maxPodsPerBlock: z.int().min(1).max(1024).default(32),
  tierWeights: z
    .record(z.string().max(32).regex(/^[a-z0-9_]+$/), z.number().gte(0).lte(1))
    .default({ gpu: 1, cpu: 0.8 })
    .meta({ description: 'score weight of a block by the tier (vLLM medium, lower-cased) it is stored in' }),
  eventPort: Port.default(5557).meta({
    description: 'port each pod publishes its KV events on (vLLM --kv-events-config endpoint); the indexer connects to it, and the operator binds vLLM to it when it runs vLLM',
  }),
  replayPort: Port.nullable()
    .default(5558)
    .meta({ description: 'port of each pod\'s KV-event replay endpoint, used to recover missed events; null when the pods offer no replay' }),
})
  .refine((s) => s.replayPort !== s.eventPort, { path: ['replayPort'], message: 'expected replayPort to differ from eventPort: vLLM binds both on each pod' })
  .meta({
    'x-kubernetes-validations': [
      { rule: '!has(self.replayPort) || self.replayPort != self.eventPort', message: 'replayPort must differ from eventPort: vLLM binds both on each pod' },
    ],
  });
export type IndexerSpec = z.infer<typeof IndexerSpec>;

export const GatewaySpec = z
  .object({
    envoyFilter: z.boolean().default(false),
    namespace: z
      .string()
      .min(1)
      .max(63)
      .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a namespace name: lower-case letters, digits and "-"')
      .optional()
      .meta({
        description:
          'namespace of the Istio gateway workload, where the EnvoyFilter is created (Istio applies a filter only to workloads in its own namespace, or to all from the root namespace); defaults to the pool\'s namespace',
      }),
    workloadSelector: LabelMap.optional().meta({ description: 'labels of the Istio gateway workload the EnvoyFilter applies to' }),
    messageTimeout: z.string().regex(/^([0-9]+(\.[0-9]+)?(ms|s|m))+$/).default('1s'),
  })
  .meta({
    'x-kubernetes-validations': [
      { rule: '!has(self.envoyFilter) || !self.envoyFilter || has(self.workloadSelector)', message: 'workloadSelector is required when envoyFilter is true' },
    ],
  });
export type GatewaySpec = z.infer<typeof GatewaySpec>;

export const InferencePoolSpec = z
  .object({
    model: ModelSpec,
    modelServer: ModelServerSpec.optional(),
    selector: LabelMap.optional(),
    targetPort: Port.default(8000),
    router: RouterSpec.prefault({}),
    indexer: IndexerSpec.prefault({}),
    gateway: GatewaySpec.prefault({}),
  })
  .meta({
    'x-kubernetes-validations': [
      {
        rule: 'has(self.modelServer) || (has(self.selector) && size(self.selector) > 0)',
        message: 'selector is required when modelServer is absent: the pool adopts existing pods by label',
      },
      {
        rule: '!has(self.modelServer) || self.targetPort == self.modelServer.port',
        message: 'targetPort must equal modelServer.port when the operator runs the model servers',
      },
      {
        rule: '!has(self.modelServer) || (self.indexer.eventPort != self.modelServer.port && (!has(self.indexer.replayPort) || self.indexer.replayPort != self.modelServer.port))',
        message: 'indexer.eventPort and indexer.replayPort must differ from modelServer.port: vLLM binds all three',
      },
    ],
  });
export type InferencePoolSpec = z.infer<typeof InferencePoolSpec>;

export const PoolEndpoint = z.object({
  pod: z.string().max(253),
  address: z.string().max(64),
  ready: z.boolean(),
});
export type PoolEndpoint = z.infer<typeof PoolEndpoint>;

export const InferencePoolStatus = z.object({
  observedGeneration: z.int().min(0).optional(),
  replicas: z.int().min(0).optional(),
  readyReplicas: z.int().min(0).optional(),
  endpoints: z.array(PoolEndpoint).max(4096).optional(),
  conditions: Conditions.optional(),
});
export type InferencePoolStatus = z.infer<typeof InferencePoolStatus>;

export const InferencePool = z.object({
  apiVersion: z.string(),
  kind: z.literal('InferencePool'),
  metadata: ObjectMeta,
  spec: InferencePoolSpec,
  status: InferencePoolStatus.optional(),
});
export type InferencePool = z.infer<typeof InferencePool>;
