// The InferencePool custom resource: the model a pool serves, the optional vLLM servers the operator
// runs for it, the pods it selects (GIE's shapes: selector.matchLabels, targetPorts[].number) or the GIE
// InferencePool it takes them from (poolRef), and how its router, indexer and gateway wiring are configured.

import { z } from 'zod';
import {
  Conditions,
  DEFAULT_SERVING_LABEL,
  LabelKey,
  LabelMap,
  LabelValue,
  ObjectMeta,
  Quantity,
  ResourceRequirements,
  withRules,
  type CrossFieldRule,
} from './meta.ts';

const Name = z.string().min(1).max(253);
const Port = z.int().min(1).max(65535);

/**
 * spec.model.
 * @public a piece of the InferencePool API, exported with it
 */
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

/**
 * spec.modelServer.env[].
 * @public a piece of the InferencePool API, exported with it
 */
export const EnvVar = z.object({
  name: z.string().min(1).max(256),
  value: z.string().max(32768).optional(),
  valueFrom: z.record(z.string(), z.unknown()).optional().meta({ 'x-kubernetes-preserve-unknown-fields': true, type: 'object' }),
});
export type EnvVar = z.infer<typeof EnvVar>;

/**
 * spec.modelServer.tolerations[].
 * @public a piece of the InferencePool API, exported with it
 */
export const Toleration = z.object({
  key: z.string().max(317).optional(),
  operator: z.enum(['Exists', 'Equal']).optional(),
  value: z.string().max(63).optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
  tolerationSeconds: z.int().optional(),
});
export type Toleration = z.infer<typeof Toleration>;

/**
 * spec.modelServer.hfTokenSecretRef.
 * @public a piece of the InferencePool API, exported with it
 */
export const SecretKeyRef = z.object({
  name: Name,
  key: z.string().min(1).max(253).default('token'),
});

/**
 * spec.modelServer.lora: how many adapters vLLM keeps loaded. The adapters themselves come from the
 * pool's InferenceModels (a target model other than the base model is an adapter).
 * @public a piece of the InferencePool API, exported with it
 */
export const LoraSpec = z.object({
  maxLoras: z
    .int()
    .min(1)
    .max(256)
    .optional()
    .meta({ description: 'adapters one batch may use (--max-loras); defaults to the number of adapters the models name, at most 8' }),
  maxLoraRank: z.int().min(1).max(512).optional().meta({ description: "highest adapter rank (--max-lora-rank); vLLM's default is 16" }),
});

/**
 * spec.modelServer.modelCache: where vLLM keeps downloaded weights ($HF_HOME).
 * @public a piece of the InferencePool API, exported with it
 */
export const ModelCacheSpec = z.object({
  claimName: Name.optional().meta({
    description:
      "a PersistentVolumeClaim in the pool's namespace to keep weights across restarts (ReadWriteMany when replicas > 1); an emptyDir when unset, downloaded again by each new pod",
  }),
  sizeLimit: Quantity.optional().meta({ description: 'sizeLimit of the emptyDir cache; ignored with claimName' }),
  fsGroup: z.int().min(1).max(2147483647).optional().meta({
    description:
      "pod fsGroup, so the claim's files are group-writable by the container's arbitrary UID; leave unset on OpenShift (restricted-v2 assigns one from the namespace's range and rejects others) and where the volume is writable already",
  }),
});
export type ModelCacheSpec = z.infer<typeof ModelCacheSpec>;

/** PYTHONHASHSEED as Python accepts it: an integer in [0, 4294967295]. */
const HashSeed = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,9})$/, 'expected PYTHONHASHSEED as a decimal integer between 0 and 4294967295')
  .refine((v) => Number(v) <= 4294967295, { message: 'expected PYTHONHASHSEED as a decimal integer between 0 and 4294967295' });

const GPU_RESOURCE = 'nvidia.com/gpu';
/** A GPU count quantity as a number; NaN when it is not a plain count (the API server judges those). */
const gpuCount = (q: string | number | undefined) => (q === undefined ? undefined : Number(String(q)));

export const ModelServerSpec = z
  .object({
    image: z.string().min(1).max(1024),
    replicas: z.int().min(0).max(1024).default(1),
    port: Port.default(8000),
    resources: ResourceRequirements.optional().meta({
      description:
        'container resources; cpu and memory requests default to 4 and 16Gi when neither a request nor a limit names them, and nvidia.com/gpu defaults to tensorParallelSize when above 1 and no GPU is named',
    }),
    tensorParallelSize: z
      .int()
      .min(1)
      .max(64)
      .default(1)
      .meta({ description: 'GPUs one replica shards the model across (--tensor-parallel-size)' }),
    blockSize: z.int().min(1).max(1024).default(16).meta({ description: 'tokens per KV-cache block (--block-size)' }),
    gpuMemoryUtilization: z.number().gt(0).lte(1).default(0.7),
    maxModelLen: z.int().min(1).optional(),
    kvCacheDtype: z
      .string()
      .max(64)
      .regex(/^[a-z0-9_]+$/)
      .default('auto'),
    hashSeed: HashSeed.default('0').meta({
      description:
        'PYTHONHASHSEED for vLLM and the indexer: with sha256_cbor, vLLM seeds its block hashes with it (unset, vLLM picks a random seed per process and no indexer can match its hashes)',
    }),
    lora: LoraSpec.optional(),
    shmSize: Quantity.default('8Gi').meta({ description: 'size limit of the memory-backed /dev/shm (NCCL and PyTorch shared memory)' }),
    modelCache: ModelCacheSpec.prefault({}),
    startupTimeoutSeconds: z
      .int()
      .min(60)
      .max(86_400)
      .default(1800)
      .meta({ description: 'how long a new pod may take to download and load weights before it is restarted' }),
    extraArgs: z.array(z.string().max(4096)).max(64).optional(),
    env: z.array(EnvVar).max(64).optional(),
    hfTokenSecretRef: SecretKeyRef.optional(),
    nodeSelector: z.record(z.string().max(317), z.string().max(63)).optional(),
    tolerations: z.array(Toleration).max(64).optional(),
  })
  // Checked by zod only (the operator's InvalidSpec condition, `kvroute render`): kube-apiserver 1.36
  // refused a CEL rule parsing the int-or-string quantity as over its cost budget, even with the
  // quantity's length and the map's size bounded.
  .refine(
    (s) => {
      const gpus = gpuCount(s.resources?.limits?.[GPU_RESOURCE]);
      return gpus === undefined || Number.isNaN(gpus) || gpus >= s.tensorParallelSize;
    },
    {
      path: ['tensorParallelSize'],
      message: `expected resources.limits["${GPU_RESOURCE}"] to be at least tensorParallelSize: vLLM runs one tensor-parallel rank per GPU`,
    },
  );
export type ModelServerSpec = z.infer<typeof ModelServerSpec>;

/**
 * spec.router.schedulingProfile.scorerWeights.
 * @public a piece of the InferencePool API, exported with it
 */
// Defaults equal the router's default profile (DEFAULT_ENDPOINT_PICKER_CONFIG), the one the routing
// benchmark measures as `kvroute`: the running-requests scorer breaks near-ties of a shared preamble
// towards idle pods, and the no-hit-lru scorer rotates new prefixes over them
// (src/router/scheduling/README.md).
export const ScorerWeights = z.object({
  prefixCache: z.int().min(0).max(100).default(3),
  noHitLru: z.int().min(0).max(100).default(1).meta({
    description:
      'spreads requests no pod holds a quarter of (new prefixes) to the pod that took one least recently; reads the indexer with the prefix scorer, so only when prefixCache is above 0',
  }),
  queueDepth: z.int().min(0).max(100).default(1),
  kvCacheUtilization: z.int().min(0).max(100).default(1),
  runningRequests: z.int().min(0).max(100).default(1),
});

/**
 * spec.router.
 * @public a piece of the InferencePool API, exported with it
 */
export const RouterSpec = z.object({
  replicas: z.int().min(0).max(64).default(1),
  image: z
    .string()
    .min(1)
    .max(1024)
    .optional()
    .meta({ description: "kvroute image for the router and indexer; defaults to the operator's" }),
  schedulingProfile: z.object({ scorerWeights: ScorerWeights.prefault({}) }).prefault({}),
  loadBound: z.number().gte(1).lte(10).default(1.25).meta({ description: 'a pod may take at most this factor of the mean load' }),
  sessionAffinity: z
    .object({ enabled: z.boolean().default(false), header: z.string().min(1).max(256).default('x-session-id') })
    .prefault({}),
  failureMode: z.enum(['FailOpen', 'FailClose']).default('FailClose'),
});
export type RouterSpec = z.infer<typeof RouterSpec>;

/**
 * spec.indexer.
 * @public a piece of the InferencePool API, exported with it
 */
export const IndexerSpec = z
  .object({
    maxBlocks: z.int().min(1024).max(1_000_000_000).default(10_000_000).meta({ description: 'block keys the index holds before evicting' }),
    maxPodsPerBlock: z.int().min(1).max(1024).default(32),
    tierWeights: z
      .record(
        z
          .string()
          .max(32)
          .regex(/^[a-z0-9_]+$/),
        z.number().gte(0).lte(1),
      )
      .default({ gpu: 1, cpu: 0.8 })
      .meta({ description: 'score weight of a block by the tier (vLLM medium, lower-cased) it is stored in' }),
    eventPort: Port.default(5557).meta({
      description:
        'port each pod publishes its KV events on (vLLM --kv-events-config endpoint); the indexer connects to it, and the operator binds vLLM to it when it runs vLLM',
    }),
    replayPort: Port.nullable().default(5558).meta({
      description: "port of each pod's KV-event replay endpoint, used to recover missed events; null when the pods offer no replay",
    }),
  })
  .refine((s) => s.replayPort !== s.eventPort, {
    path: ['replayPort'],
    message: 'expected replayPort to differ from eventPort: vLLM binds both on each pod',
  })
  .meta({
    'x-kubernetes-validations': [
      {
        rule: '!has(self.replayPort) || self.replayPort != self.eventPort',
        message: 'replayPort must differ from eventPort: vLLM binds both on each pod',
      },
    ],
  });
export type IndexerSpec = z.infer<typeof IndexerSpec>;

/**
 * spec.gateway.
 * @public a piece of the InferencePool API, exported with it
 */
const GATEWAY_RULES: CrossFieldRule<{ envoyFilter: boolean; workloadSelector?: unknown; routeNames?: string[] }>[] = [
  {
    rule: '!has(self.envoyFilter) || !self.envoyFilter || has(self.workloadSelector)',
    message: 'workloadSelector is required when envoyFilter is true',
    field: ['workloadSelector'],
    holds: (g) => !g.envoyFilter || g.workloadSelector !== undefined,
  },
  {
    rule: '!has(self.envoyFilter) || !self.envoyFilter || has(self.routeNames)',
    message: "routeNames is required when envoyFilter is true: ext_proc runs only on the pool's routes",
    field: ['routeNames'],
    holds: (g) => !g.envoyFilter || (g.routeNames?.length ?? 0) > 0,
  },
];

/** @public */
export const GatewaySpec = withRules(
  z.object({
    envoyFilter: z.boolean().default(false).meta({
      description:
        'wire the router into an Istio gateway with an EnvoyFilter (Istio without the Gateway API Inference Extension); when false the operator emits a GIE InferencePool wherever inference.networking.k8s.io/v1 is served',
    }),
    namespace: z
      .string()
      .min(1)
      .max(63)
      .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a namespace name: lower-case letters, digits and "-"')
      .optional()
      .meta({
        description:
          "namespace of the Istio gateway workload, where the EnvoyFilter is created (Istio applies a filter only to workloads in its own namespace, or to all from the root namespace); defaults to the pool's namespace; a namespace other than the pool's must be allowed by the operator's --gateway-namespaces",
      }),
    workloadSelector: LabelMap.optional().meta({ description: 'labels of the Istio gateway workload the EnvoyFilter applies to' }),
    routeNames: z.array(z.string().min(1).max(253)).min(1).max(16).optional().meta({
      description:
        'the gateway routes that serve this pool, by the name Envoy gives them: a VirtualService http[].name (with ".<match name>" appended when the match is named), or for a Gateway API HTTPRoute on Istio "<namespace>.<name>.<rule index>" (or the rule\'s name); ext_proc runs on these routes only',
    }),
    backendRef: z
      .object({
        name: z
          .string()
          .min(1)
          .max(63)
          .regex(/^[a-z]([-a-z0-9]*[a-z0-9])?$/, 'must be a Service name: lower-case letters, digits and "-", starting with a letter'),
        port: Port,
      })
      .optional()
      .meta({
        description:
          "the Service (in the pool's namespace) and port the routes send to, whose gateway cluster is made to honour the router's pick; defaults to the operator's <pool>-vllm Service when it runs the model servers",
      }),
    messageTimeout: z
      .string()
      .regex(/^([0-9]+(\.[0-9]+)?(ms|s|m))+$/)
      .default('1000s')
      .meta({
        description: 'how long the gateway waits for each ext_proc reply; with streamed bodies a reply may wait for a whole generation',
      }),
  }),
  GATEWAY_RULES,
);
export type GatewaySpec = z.infer<typeof GatewaySpec>;

/**
 * spec.selector: GIE's shape (LabelSelector's matchLabels only, as GIE v1 allows).
 * @public a piece of the InferencePool API, exported with it
 */
export const PoolSelector = z.object({
  matchLabels: LabelMap.refine((m) => Object.keys(m).length >= 1 && Object.keys(m).length <= 64, {
    message: 'expected 1 to 64 labels',
  }).meta({
    minProperties: 1,
    maxProperties: 64,
    description: "labels the pool's model-server pods carry (same namespace)",
  }),
});

/**
 * spec.targetPorts[]: GIE's shape; each port of a selected pod is one endpoint.
 * @public a piece of the InferencePool API, exported with it
 */
export const TargetPort = z.object({ number: Port });

/** The GIE API group whose InferencePools a kvroute pool may take its pods from (spec.poolRef). */
const GIE_POOL_GROUP = 'inference.networking.k8s.io';

/**
 * spec.poolRef: a GIE InferencePool in the pool's namespace whose selector and target ports this pool
 * uses; the kvroute pool then holds only kvroute's settings (router, indexer, gateway).
 * @public a piece of the InferencePool API, exported with it
 */
export const PoolRef = z.object({
  name: Name,
  group: z.literal(GIE_POOL_GROUP).default(GIE_POOL_GROUP).meta({ description: 'API group of the referenced InferencePool (GIE v1)' }),
});
export type PoolRef = z.infer<typeof PoolRef>;

/**
 * spec.servingLabel: the label a pod must carry, besides the selector, to be an endpoint.
 * @public a piece of the InferencePool API, exported with it
 */
export const ServingLabel = z.object({
  key: LabelKey.default(DEFAULT_SERVING_LABEL.key),
  value: LabelValue.default(DEFAULT_SERVING_LABEL.value),
});
export type ServingLabel = z.infer<typeof ServingLabel>;

/** The target port when a pool names none: its model servers' port, or vLLM's default. */
const DEFAULT_TARGET_PORT = 8000;

type SpecShape = {
  model?: unknown;
  modelServer?: { port: number };
  gateway?: { envoyFilter: boolean; backendRef?: unknown };
  selector?: unknown;
  poolRef?: unknown;
  targetPorts?: { number: number }[];
  indexer: { eventPort: number; replayPort: number | null };
};

const POOL_RULES: CrossFieldRule<SpecShape>[] = [
  {
    rule: '!(has(self.selector) && has(self.poolRef))',
    message: 'selector and poolRef are mutually exclusive: a pool selects its pods or takes them from the referenced InferencePool',
    field: ['poolRef'],
    holds: (s) => !(s.selector && s.poolRef),
  },
  {
    rule: 'has(self.modelServer) || has(self.selector) || has(self.poolRef)',
    message:
      "selector is required when modelServer is absent: the pool adopts existing pods by label (or set poolRef to use a GIE InferencePool's)",
    field: ['selector'],
    holds: (s) => Boolean(s.modelServer || s.selector || s.poolRef),
  },
  {
    rule: '!has(self.poolRef) || !has(self.modelServer)',
    message: 'modelServer cannot be used with poolRef: the referenced InferencePool selects the pods',
    field: ['modelServer'],
    holds: (s) => !(s.poolRef && s.modelServer),
  },
  {
    rule: '!has(self.poolRef) || !has(self.targetPorts)',
    message: 'targetPorts cannot be used with poolRef: the ports come from the referenced InferencePool',
    field: ['targetPorts'],
    holds: (s) => !(s.poolRef && s.targetPorts),
  },
  {
    rule: 'has(self.model) || has(self.poolRef)',
    message: 'model is required unless poolRef is set: modelServer loads it and the router and indexer serve it',
    field: ['model'],
    holds: (s) => Boolean(s.model || s.poolRef),
  },
  {
    rule: '!has(self.modelServer) || !has(self.targetPorts) || (size(self.targetPorts) == 1 && self.targetPorts[0].number == self.modelServer.port)',
    message: 'targetPorts must be unset or [{number: modelServer.port}] when the operator runs the model servers',
    field: ['targetPorts'],
    holds: (s) => !s.modelServer || !s.targetPorts || (s.targetPorts.length === 1 && s.targetPorts[0]!.number === s.modelServer.port),
  },
  {
    rule: '!has(self.modelServer) || (self.indexer.eventPort != self.modelServer.port && (!has(self.indexer.replayPort) || self.indexer.replayPort != self.modelServer.port))',
    message: 'indexer.eventPort and indexer.replayPort must differ from modelServer.port: vLLM binds all three',
    field: ['indexer'],
    holds: (s) => !s.modelServer || (s.indexer.eventPort !== s.modelServer.port && s.indexer.replayPort !== s.modelServer.port),
  },
  {
    rule: '!has(self.gateway) || !has(self.gateway.envoyFilter) || !self.gateway.envoyFilter || has(self.modelServer) || has(self.gateway.backendRef)',
    message:
      "gateway.backendRef is required when gateway.envoyFilter is true and modelServer is absent: it names the Service the pool's routes send to",
    field: ['gateway', 'backendRef'],
    holds: (s) => !s.gateway?.envoyFilter || Boolean(s.modelServer || s.gateway.backendRef),
  },
];

export const InferencePoolSpec = withRules(
  z.object({
    model: ModelSpec.optional().meta({ description: 'the model the pool serves; optional only with poolRef' }),
    modelServer: ModelServerSpec.optional(),
    selector: PoolSelector.optional(),
    targetPorts: z
      .array(TargetPort)
      .min(1)
      .max(8)
      .refine((ports) => new Set(ports.map((p) => p.number)).size === ports.length, { message: 'expected unique port numbers' })
      .optional()
      .meta({
        description: `ports of each selected pod that serve the model, one endpoint each; defaults to modelServer.port, else ${DEFAULT_TARGET_PORT}`,
        'x-kubernetes-validations': [
          { rule: 'self.all(p, self.exists_one(q, q.number == p.number))', message: 'port numbers must be unique' },
        ],
      }),
    poolRef: PoolRef.optional(),
    servingLabel: ServingLabel.prefault({}),
    router: RouterSpec.prefault({}),
    indexer: IndexerSpec.prefault({}),
    gateway: GatewaySpec.prefault({}),
  }),
  POOL_RULES,
);
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

/** The ports each selected pod serves on; undefined for a pool that takes them from a GIE InferencePool. */
export function poolTargetPorts(spec: InferencePoolSpec): number[] | undefined {
  if (spec.poolRef) return undefined;
  if (spec.targetPorts) return spec.targetPorts.map((p) => p.number);
  return [spec.modelServer?.port ?? DEFAULT_TARGET_PORT];
}
