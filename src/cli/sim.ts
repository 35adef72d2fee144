// `kvroute sim`: runs one or more simulated vLLM pods in this process (flags -> SimPodConfig).

import { Command, InvalidArgumentError, Option } from 'commander';
import { createLogger, LOG_LEVELS, parseLogLevel } from '../common/log.ts';
import { onShutdown } from '../common/shutdown.ts';
import { parseSimPodConfig, replicaTopicProblem, type SimPodConfigInput } from '../sim/config.ts';
import { DEFAULT_LATENCY } from '../sim/latency.ts';
import { endpointForRank } from '../vllm/events/topic.ts';
import { isBindEndpoint } from '../sim/events/publisher.ts';
import { startSimPod, type SimPod } from '../sim/pod.ts';
import { loadSimTokenizer } from '../sim/tokenizer.ts';

function num(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`expected a number, got "${value}"`);
  return n;
}

function loraModule(value: string, previous: Array<{ name: string; path: string }> = []): Array<{ name: string; path: string }> {
  const eq = value.indexOf('=');
  if (eq <= 0 || eq === value.length - 1) throw new InvalidArgumentError(`expected name=path, got "${value}"`);
  return [...previous, { name: value.slice(0, eq), path: value.slice(eq + 1) }];
}

interface SimFlags {
  port?: number;
  basePort?: number;
  replicas: number;
  host: string;
  model: string;
  podId?: string;
  tokenizer: string;
  tokenizerWorkers: number;
  blockSize: number;
  hashSeed?: string;
  kvBlocks: number;
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  maxModelLen?: number;
  timeScale: number;
  frontendOverheadMs: number;
  stepBaseMs: number;
  prefillMsPerToken: number;
  decodeMsPerSeq: number;
  kvEventsEndpoint?: string;
  kvEventsReplayEndpoint?: string;
  kvEventsTopic?: string;
  kvEventsEncoding: string;
  kvEventsHash: string;
  kvEventsBufferSteps: number;
  kvEventsFlushOnReset: boolean;
  loraModules?: Array<{ name: string; path: string }>;
  maxLoras: number;
  failureRate: number;
  startupDelayMs: number;
  publisherStallAfterMs?: number;
  publisherStallMs: number;
  dropEventBatchRate: number;
  debugEndpoints: boolean;
  seed: number;
  logLevel: string;
}

export function command(): Command {
  return new Command('sim')
    .option('--port <n>', 'HTTP port of a single pod', num)
    .option('--base-port <n>', 'HTTP port of replica 0; replica i listens on base-port + i', num)
    .option('--replicas <n>', 'simulated pods in this process (ids <pod-id>-i, or sim-i)', num, 1)
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .requiredOption('--model <name>', 'served model name')
    .option('--pod-id <id>', 'pod id used in the event topic and x-inference-pod (default sim-0)')
    .option('--tokenizer <source>', 'tokenizer: npm:qwen3 | npm:llama3_1 | npm:gptoss | dir:<path>', 'npm:qwen3')
    .option('--tokenizer-workers <n>', 'worker threads that tokenize prompts (0: on the event loop)', num, 1)
    .option('--block-size <n>', 'tokens per KV block', num, 16)
    .option('--hash-seed <seed>', "PYTHONHASHSEED of the simulated vLLM (unset: vLLM's default seed)")
    .option('--kv-blocks <n>', 'KV cache blocks (vLLM num_gpu_blocks, including the null block)', num, 8192)
    .option('--max-num-seqs <n>', 'most requests running at once', num, 256)
    .option('--max-num-batched-tokens <n>', 'token budget per scheduler step (chunked prefill)', num, 8192)
    .option('--max-model-len <n>', 'longest prompt + completion (default: min(32768, KV cache capacity))', num)
    .option('--time-scale <x>', 'simulated ms per wall ms', num, 1)
    .option('--frontend-overhead-ms <ms>', 'per-request cost before scheduling', num, DEFAULT_LATENCY.frontendOverheadMs)
    .option('--step-base-ms <ms>', 'fixed cost of each scheduler step', num, DEFAULT_LATENCY.stepBaseMs)
    .option('--prefill-ms-per-token <ms>', 'cost per uncached prompt token', num, DEFAULT_LATENCY.prefillMsPerToken)
    .option('--decode-ms-per-seq <ms>', 'cost per decoding sequence per step', num, DEFAULT_LATENCY.decodeMsPerSeq)
    .option('--kv-events-endpoint <ep>', 'ZMQ PUB endpoint: binds if it contains *, connects otherwise')
    .option('--kv-events-replay-endpoint <ep>', 'ZMQ ROUTER endpoint for replay requests (binds)')
    .option(
      '--kv-events-topic <topic>',
      'event topic; {pod} and {model} are substituted, and {pod} is required with --replicas > 1 (default kv@<pod-id>@<model>)',
    )
    .addOption(new Option('--kv-events-encoding <form>', 'event encoding').choices(['map', 'array']).default('map'))
    .addOption(new Option('--kv-events-hash <form>', 'block hash form in events').choices(['uint64', 'bytes']).default('uint64'))
    .option('--kv-events-buffer-steps <n>', 'batches kept for replay', num, 10_000)
    .option('--kv-events-flush-on-reset', 'send AllBlocksCleared at /reset_prefix_cache time (vLLM sends it with the next step)', false)
    .option('--lora-modules <name=path...>', 'LoRA adapters served as models (repeatable)', loraModule)
    .option('--max-loras <n>', 'vLLM max_loras (reported in vllm:lora_requests_info)', num, 1)
    .option('--failure-rate <p>', 'fraction of requests answered with HTTP 500', num, 0)
    .option('--startup-delay-ms <ms>', 'wall ms before /health answers 200 (slow start)', num, 0)
    .option('--publisher-stall-after-ms <ms>', 'wall ms after start when the event publisher stalls', num)
    .option('--publisher-stall-ms <ms>', 'how long the publisher stalls (batches queue, then flush)', num, 0)
    .option('--drop-event-batch-rate <p>', 'fraction of event batches never sent (still replayable)', num, 0)
    .option(
      '--debug-endpoints',
      'serve /debug/kv-cache (resident blocks) and /debug/faults (hang, metrics stall, dropped batches, publisher stall at run time); no authentication, tests only',
      false,
    )
    .option('--seed <n>', 'seed for generated tokens and fault injection', num, 0)
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default('info'))
    .action(async (flags: SimFlags) => {
      const log = createLogger({ level: parseLogLevel(flags.logLevel), component: 'sim' });
      const replicas = flags.replicas;
      if (!Number.isInteger(replicas) || replicas < 1)
        throw new InvalidArgumentError(`--replicas must be a positive integer, got ${replicas}`);
      const basePort = flags.basePort ?? flags.port;
      if (basePort === undefined) throw new InvalidArgumentError('--port (or --base-port with --replicas) is required');
      const topicProblem = replicaTopicProblem(flags.kvEventsTopic ?? null, replicas);
      if (topicProblem) throw new InvalidArgumentError(topicProblem);
      const workers = flags.tokenizerWorkers;
      if (!Number.isInteger(workers) || workers < 0)
        throw new InvalidArgumentError(`--tokenizer-workers must be an integer >= 0, got ${workers}`);
      const tokenizer = await loadSimTokenizer(flags.model, flags.tokenizer, { workers, log });
      const pods: SimPod[] = [];
      const shutdown = onShutdown(log, [
        async () => {
          await Promise.all(pods.map((p) => p.close()));
          await tokenizer.close();
        },
      ]);
      try {
        for (let i = 0; i < replicas; i++) {
          const podId = replicas === 1 ? (flags.podId ?? 'sim-0') : `${flags.podId ?? 'sim'}-${i}`;
          const ep = flags.kvEventsEndpoint;
          const input: SimPodConfigInput = {
            podId,
            model: flags.model,
            host: flags.host,
            port: basePort === 0 ? 0 : basePort + i,
            tokenizer: flags.tokenizer,
            blockSize: flags.blockSize,
            hashSeed: flags.hashSeed ?? null,
            kvBlocks: flags.kvBlocks,
            maxNumSeqs: flags.maxNumSeqs,
            maxNumBatchedTokens: flags.maxNumBatchedTokens,
            maxModelLen: flags.maxModelLen ?? null,
            timeScale: flags.timeScale,
            latency: {
              frontendOverheadMs: flags.frontendOverheadMs,
              stepBaseMs: flags.stepBaseMs,
              prefillMsPerToken: flags.prefillMsPerToken,
              decodeMsPerSeq: flags.decodeMsPerSeq,
            },
            // Replicas share a connect endpoint (distinct topics); a bind endpoint gets one port each.
            kvEventsEndpoint: ep ? (isBindEndpoint(ep) ? endpointForRank(ep, i) : ep) : null,
            kvEventsReplayEndpoint: flags.kvEventsReplayEndpoint ? endpointForRank(flags.kvEventsReplayEndpoint, i) : null,
            kvEventsTopic: flags.kvEventsTopic ?? null,
            kvEventsEncoding: flags.kvEventsEncoding as 'map' | 'array',
            kvEventsHash: flags.kvEventsHash as 'uint64' | 'bytes',
            kvEventsBufferSteps: flags.kvEventsBufferSteps,
            kvEventsFlushOnReset: flags.kvEventsFlushOnReset,
            loraModules: flags.loraModules ?? [],
            maxLoras: flags.maxLoras,
            failureRate: flags.failureRate,
            startupDelayMs: flags.startupDelayMs,
            publisherStallAfterMs: flags.publisherStallAfterMs ?? null,
            publisherStallMs: flags.publisherStallMs,
            dropEventBatchRate: flags.dropEventBatchRate,
            debugEndpoints: flags.debugEndpoints,
            seed: flags.seed + i,
          };
          pods.push(await startSimPod(parseSimPodConfig(input), { tokenizer, log }));
        }
      } catch (err) {
        log.error('simulator failed to start', { err });
        await shutdown();
        process.exitCode = 1;
      }
    });
}
