// The indexer's config file (`kvroute indexer --config FILE`, and the indexer.yaml the operator
// renders into a pool's ConfigMap): the one source of its type, with every default in one place.
// Flags override file values; loadIndexerConfig turns a bad file into an error naming the field.

import fs from 'node:fs/promises';
import YAML from 'yaml';
import { z } from 'zod';
import { DEFAULT_SERVING_LABEL } from './meta.ts';

const LOG_LEVEL = z.enum(['debug', 'info', 'warn', 'error']);
const PORT = z.int().min(0).max(65535);
const ZMQ_ENDPOINT = z.string().regex(/^(tcp|ipc|inproc):\/\/.+/, 'expected a ZMQ endpoint such as tcp://10.0.0.5:5557');

export const IndexerPod = z.strictObject({
  /** Pod id as it appears in scores (the middle part of the event topic in central mode). */
  name: z.string().min(1),
  /** The pod's KV-event publisher (vLLM's --kv-events-config endpoint). */
  endpoint: ZMQ_ENDPOINT,
  /** vLLM's replay ROUTER endpoint, used to recover sequence gaps. */
  replayEndpoint: ZMQ_ENDPOINT.optional(),
});
export type IndexerPod = z.infer<typeof IndexerPod>;

const LABEL_KEY = z
  .string()
  .regex(
    /^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/,
    'expected a Kubernetes label key such as app or example.com/role',
  );
const LABEL_VALUE = z
  .string()
  .regex(
    /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/,
    'expected a Kubernetes label value (63 characters or fewer, alphanumeric at both ends)',
  );

/**
 * Per-pod mode with pods found through the Kubernetes API: every vLLM pod binds its publisher, and
 * every indexer replica connects to every Ready pod, so each replica sees all events.
 */
export const PodDiscoveryConfig = z
  .strictObject({
    /** Namespace watched; the CLI fills it from $POD_NAMESPACE when left out. */
    namespace: z
      .string({ error: 'expected the namespace to watch: set zmq.discovery.namespace, --discovery-namespace or POD_NAMESPACE' })
      .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'expected a namespace name (lower-case alphanumerics and -)'),
    /** Labels the pool's pods carry; the serving label is always added. */
    selector: z.record(LABEL_KEY, LABEL_VALUE).default({}),
    /** The label every serving pod carries besides the selector (the pool's spec.servingLabel). */
    servingLabel: z
      .strictObject({ key: LABEL_KEY.default(DEFAULT_SERVING_LABEL.key), value: LABEL_VALUE.default(DEFAULT_SERVING_LABEL.value) })
      .prefault({}),
    /** Port of each pod's KV-event publisher (vLLM `endpoint: tcp://*:PORT`). */
    port: PORT.min(1).default(5557),
    /** Port of each pod's replay ROUTER (vLLM `replay_endpoint`); null: the pods have none. */
    replayPort: PORT.min(1).nullable().default(5558),
    /** What names a pod in scores: its IP, because vLLM's topic is kv@$(POD_IP)@<model>. */
    podIdFrom: z.literal('ip').default('ip'),
    /**
     * Seconds a pod may stay NotReady before it is disconnected and its entries dropped. Its cache is
     * still valid while a readiness probe flaps, and dropped entries only come back with new events.
     */
    notReadyGraceSeconds: z.number().min(0).default(30),
    /**
     * Data-parallel ranks per pod (vLLM `--data-parallel-size`). Rank r publishes on port + r and
     * replays on replayPort + r, so discovery connects to every rank of each pod.
     */
    dataParallelSize: z.int().min(1).max(256).default(1),
  })
  .superRefine((d, ctx) => {
    const last = d.port + d.dataParallelSize - 1;
    if (last > 65535)
      ctx.addIssue({
        code: 'custom',
        path: ['dataParallelSize'],
        message: `expected port + dataParallelSize - 1 <= 65535: rank ${d.dataParallelSize - 1} would publish on ${last}`,
      });
    if (d.replayPort === null) return;
    const lastReplay = d.replayPort + d.dataParallelSize - 1;
    if (lastReplay > 65535)
      ctx.addIssue({
        code: 'custom',
        path: ['dataParallelSize'],
        message: `expected replayPort + dataParallelSize - 1 <= 65535: rank ${d.dataParallelSize - 1} would replay on ${lastReplay}`,
      });
    // vLLM binds both ranges in one pod; overlapping ranges cannot both be bound.
    if (d.port <= lastReplay && d.replayPort <= last) {
      ctx.addIssue({
        code: 'custom',
        path: ['replayPort'],
        message: `expected publisher ports ${d.port}-${last} and replay ports ${d.replayPort}-${lastReplay} not to overlap: each data-parallel rank offsets both by its rank`,
      });
    }
  });
export type PodDiscoveryConfig = z.infer<typeof PodDiscoveryConfig>;

export const IndexerConfig = z
  .strictObject({
    zmq: z
      .strictObject({
        /** Central mode: the indexer binds a SUB socket that every pod's publisher connects to. */
        bind: ZMQ_ENDPOINT.optional(),
        /** Per-pod mode: the indexer connects to each pod's publisher. */
        pods: z.array(IndexerPod).default([]),
        /** Discovery mode: the indexer connects to each Ready pod the Kubernetes API lists. */
        discovery: PodDiscoveryConfig.optional(),
        /**
         * Central mode: each pod's replay endpoint (vLLM `replay_endpoint`, rank 0) made from the pod
         * id in its topic: `{pod}` is the pod id, `{host}` the pod id without a `:port` suffix, e.g.
         * `tcp://{pod}:5558`. Ranks >= 1 add their rank to the port, as vLLM binds them. A zmq.pods
         * entry's replayEndpoint wins for its pod.
         */
        replayEndpointTemplate: z
          .string()
          .regex(/^(tcp|ipc|inproc):\/\/.*\{(pod|host)\}/, 'expected a ZMQ endpoint with {pod} or {host} in it, such as tcp://{pod}:5558')
          .optional(),
        /**
         * Seconds a source (pod x data-parallel rank) may send nothing before it is forgotten with its
         * index entries. 0 (default) never: vLLM publishes only when its cache changes, so a pod serving
         * only cache hits is silent while its blocks stay valid. Turn it on in central mode with pod
         * churn and no discovery, above the longest quiet spell a live pod may have (ADR 0003).
         */
        sourceIdleTimeoutSeconds: z.number().min(0).default(0),
        /**
         * Central mode: data-parallel ranks per pod. vLLM's rank r offsets its publisher's port by r,
         * so the indexer binds zmq.bind's port through port + dataParallelSize - 1.
         */
        dataParallelSize: z.int().min(1).max(256).default(1),
        /** A KV-event payload larger than this is dropped undecoded and counted (reason too_large). */
        maxBatchBytes: z
          .int()
          .min(1)
          .default(16 * 1024 * 1024),
        /** A batch of more events is dropped before any is decoded and counted (reason too_many_events). */
        maxBatchEvents: z.int().min(1).default(65_536),
        /** libzmq's frame limit (ZMQ_MAXMSGSIZE): a publisher sending more is disconnected before it is buffered. */
        maxMessageBytes: z
          .int()
          .min(1)
          .default(64 * 1024 * 1024),
      })
      .prefault({}),
    http: z
      .strictObject({
        host: z.string().default('0.0.0.0'),
        port: PORT.default(8081),
        /** Larger request bodies (/v1/score, /v1/tokenize) are refused with 413 while being read. */
        maxBodyBytes: z
          .int()
          .min(1)
          .default(16 * 1024 * 1024),
      })
      .prefault({}),
    grpc: z
      .strictObject({
        host: z.string().default('0.0.0.0'),
        port: PORT.default(9004),
        /** Larger Score requests are refused by grpc-js with RESOURCE_EXHAUSTED before they are parsed. */
        maxReceiveBytes: z
          .int()
          .min(1)
          .default(16 * 1024 * 1024),
      })
      .prefault({}),
    /**
     * A second HTTP listener with only /metrics, /healthz and /readyz, for kubelet and Prometheus when
     * the scoring API listens on loopback (the router's sidecar, as the operator renders it). Unset: none.
     */
    metrics: z.strictObject({ host: z.string().default('0.0.0.0'), port: PORT }).optional(),
    /** Tokens per block in the index (vLLM's default block size is 16). */
    blockSize: z.int().min(1).max(4096).default(16),
    /** PYTHONHASHSEED of the vLLM pool, as a string; null when unset. Numbers are accepted and stringified. */
    hashSeed: z
      .union([z.string(), z.int().transform(String)])
      .nullable()
      .default(null),
    /** Trust the pool to run sha256_cbor with hashSeed: engine keys are computed, not learned. */
    engineKeyParity: z.boolean().default(false),
    /**
     * LoRA adapter name -> path, exactly as the pool's vLLM `--lora-modules name=path`. vLLM 0.33 hashes
     * the path into LoRA blocks and events do not carry it, so engine-key parity mode needs it here.
     */
    loras: z.record(z.string().min(1), z.string().min(1, 'expected the adapter path vLLM was given')).default({}),
    index: z
      .strictObject({
        maxKeys: z.int().min(1).optional(),
        maxPodsPerKey: z.int().min(1).optional(),
        /** Entries one pod may hold; a BlockStored past it is dropped and counted (pod_block_limit). */
        maxBlocksPerPod: z
          .int()
          .min(1)
          .default(1 << 20),
      })
      .prefault({}),
    /** Score weight per storage tier (vLLM's medium, lower-cased). */
    tierWeights: z.record(z.string().min(1), z.number().min(0)).default({ gpu: 1.0, cpu: 0.8 }),
    /** Model name (or "*" for any other) -> tokenizer source: npm:<name>, tiktoken:<encoding>, dir:<path>. */
    tokenizers: z.record(z.string().min(1), z.string().min(1)).default({}),
    /**
     * Tokenizer source for a model with no `tokenizers` entry (nor "*"): Qwen3, Llama 3.1 and gpt-oss
     * models get their family's npm tokenizer, any other model this one, loaded on first use with a
     * warning. The default is `kvroute sim`'s tokenizer, so a local sim and indexer agree. "none":
     * such models are rejected (400).
     */
    defaultTokenizer: z.string().min(1).default('npm:qwen3'),
    tokenization: z
      .strictObject({
        /** Bound of the tokenization cache per model. */
        cacheMaxBytes: z
          .int()
          .min(0)
          .default(64 * 1024 * 1024),
        /** Worker threads that tokenize (each loads every tokenizer); 0 tokenizes on the event loop. */
        workers: z.int().min(0).max(64).default(1),
        /** Conversation start date for gpt-oss (harmony) prompts; pin it as the pool's VLLM_SYSTEM_START_DATE. */
        harmonyStartDate: z.iso.date().optional(),
      })
      .prefault({}),
    logLevel: LOG_LEVEL.default('info'),
  })
  .refine((c) => c.zmq.dataParallelSize === 1 || (c.zmq.bind !== undefined && /^tcp:\/\/.+:[1-9]\d*$/.test(c.zmq.bind)), {
    message: 'expected zmq.bind as tcp://HOST:PORT with a fixed port when zmq.dataParallelSize > 1: rank r publishes to PORT + r',
    path: ['zmq', 'dataParallelSize'],
  })
  .refine((c) => c.zmq.bind !== undefined || c.zmq.pods.length > 0 || c.zmq.discovery !== undefined, {
    message:
      'expected zmq.bind (central mode), at least one zmq.pods entry (per-pod mode) or zmq.discovery (pods found through the Kubernetes API)',
    path: ['zmq'],
  });
export type IndexerConfig = z.infer<typeof IndexerConfig>;
/** The config as written in a file: every field with a default may be left out. */
export type IndexerConfigInput = z.input<typeof IndexerConfig>;

/** One line per problem: `field.path: message`. */
function formatConfigIssues(error: z.ZodError, source: string): string {
  const lines = error.issues.flatMap((i) => {
    const at = i.path.join('.');
    if (i.code === 'unrecognized_keys') return i.keys.map((k) => `  ${at ? `${at}.` : ''}${k}: unknown field`);
    // A bad record key (a label key, say): the key's own issue says what was expected.
    if (i.code === 'invalid_key') return [`  ${at || '(root)'}: ${i.issues.map((k) => k.message).join('; ') || i.message}`];
    return [`  ${at || '(root)'}: ${i.message}`];
  });
  return `invalid indexer config ${source}:\n${lines.join('\n')}`;
}

/** Validates a parsed config object (file contents merged with flag overrides). */
export function parseIndexerConfig(value: unknown, source = '(flags)'): IndexerConfig {
  const result = IndexerConfig.safeParse(value);
  if (!result.success) throw new Error(formatConfigIssues(result.error, source));
  return result.data;
}

/** Reads a YAML or JSON config file into a plain object (validation happens after flags are merged). */
export async function readIndexerConfigFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read indexer config ${file}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = YAML.parse(text);
  } catch (err) {
    throw new Error(`indexer config ${file} is not valid YAML or JSON: ${(err as Error).message}`);
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new Error(`indexer config ${file}: expected a mapping at the top level`);
  return value as Record<string, unknown>;
}
