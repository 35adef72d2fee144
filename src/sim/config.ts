// The simulated pod's configuration: one zod schema (the only source of its type) that the CLI
// fills from flags, with defaults that match vLLM where vLLM has one.

import { z } from 'zod';
import { DEFAULT_LATENCY } from './latency.ts';

const endpoint = z.string().regex(/^(tcp|ipc|inproc):\/\/.+/, 'expected a ZMQ endpoint such as tcp://127.0.0.1:5557 or tcp://*:5557');

const LoraModuleSchema = z.object({ name: z.string().min(1), path: z.string().min(1) });

const SimPodConfigSchema = z
  .object({
    podId: z.string().min(1),
    model: z.string().min(1),
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65535),
    tokenizer: z.string().default('npm:qwen3'),
    blockSize: z.number().int().positive().default(16),
    /** PYTHONHASHSEED of the simulated vLLM; null = unset ("vllm-none-hash"). */
    hashSeed: z.string().nullable().default(null),
    kvBlocks: z.number().int().min(2).default(8192),
    maxNumSeqs: z.number().int().positive().default(256),
    maxNumBatchedTokens: z.number().int().positive().default(8192),
    /** Defaults to min(32768, KV cache capacity) so a small --kv-blocks still starts. */
    maxModelLen: z.number().int().positive().nullable().default(null),
    timeScale: z.number().positive().default(1),
    latency: z
      .object({
        frontendOverheadMs: z.number().nonnegative(),
        stepBaseMs: z.number().nonnegative(),
        prefillMsPerToken: z.number().nonnegative(),
        decodeMsPerSeq: z.number().nonnegative(),
      })
      .default(DEFAULT_LATENCY),
    kvEventsEndpoint: endpoint.nullable().default(null),
    kvEventsReplayEndpoint: endpoint.nullable().default(null),
    /** Event topic; `{pod}` and `{model}` are replaced by the pod id and model. Null: kv@<pod>@<model>. */
    kvEventsTopic: z.string().min(1).nullable().default(null),
    kvEventsEncoding: z.enum(['map', 'array']).default('map'),
    kvEventsHash: z.enum(['uint64', 'bytes']).default('uint64'),
    kvEventsBufferSteps: z.number().int().positive().default(10_000),
    /** Send AllBlocksCleared at reset time instead of with the next step (vLLM's behaviour). */
    kvEventsFlushOnReset: z.boolean().default(false),
    dpRank: z.number().int().nonnegative().default(0),
    loraModules: z.array(LoraModuleSchema).default([]),
    maxLoras: z.number().int().positive().default(1),
    failureRate: z.number().min(0).max(1).default(0),
    startupDelayMs: z.number().nonnegative().default(0),
    publisherStallAfterMs: z.number().nonnegative().nullable().default(null),
    publisherStallMs: z.number().nonnegative().default(0),
    dropEventBatchRate: z.number().min(0).max(1).default(0),
    /** Serve /debug/kv-cache and /debug/faults (no authentication: tests and the chaos suite only). */
    debugEndpoints: z.boolean().default(false),
    seed: z.number().int().default(0),
  })
  .superRefine((c, ctx) => {
    const capacity = (c.kvBlocks - 1) * c.blockSize;
    if (c.maxModelLen !== null && c.maxModelLen > capacity) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxModelLen'],
        message: `max model len ${c.maxModelLen} exceeds the KV cache capacity of ${capacity} tokens ((kv-blocks - 1) x block-size); vLLM refuses to start like this`,
      });
    }
  })
  .transform((c) => ({ ...c, maxModelLen: c.maxModelLen ?? Math.min(32768, (c.kvBlocks - 1) * c.blockSize) }));

export type SimPodConfig = z.infer<typeof SimPodConfigSchema>;
export type SimPodConfigInput = z.input<typeof SimPodConfigSchema>;

/** Parses a config, turning zod issues into one readable error naming each field. */
export function parseSimPodConfig(input: unknown): SimPodConfig {
  const result = SimPodConfigSchema.safeParse(input);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.join('.') || '(config)'}: ${i.message}`).join('; ');
    throw new Error(`invalid simulator config: ${issues}`);
  }
  return result.data;
}

/** The topic vLLM's publisher would use for this pod: kv@<pod-id>@<model> unless configured. */
export function eventTopic(config: Pick<SimPodConfig, 'podId' | 'model' | 'kvEventsTopic'>): string {
  if (config.kvEventsTopic === null) return `kv@${config.podId}@${config.model}`;
  return config.kvEventsTopic.replaceAll('{pod}', config.podId).replaceAll('{model}', config.model);
}

/**
 * Why a topic cannot serve `replicas` pods, or null if it can. Subscribers tell sources apart by
 * topic, so replicas sharing one would look like a single pod with interleaved sequence numbers.
 */
export function replicaTopicProblem(topic: string | null, replicas: number): string | null {
  if (topic === null || replicas <= 1 || topic.includes('{pod}')) return null;
  return `--kv-events-topic "${topic}" would be shared by all ${replicas} replicas, which subscribers would take for one pod; put {pod} in it (e.g. kv@{pod}@{model}) or leave it unset`;
}
