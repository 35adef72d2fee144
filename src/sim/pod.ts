// One simulated vLLM pod: engine + prefix cache, KV event publisher, vLLM metrics in its own
// registry, and the OpenAI-compatible HTTP server, wired from a SimPodConfig. Faults (failure rate,
// slow start, publisher stall, dropped event batches; with debugEndpoints a hung pod and a stalled
// /metrics, switched at run time) are applied here.

import { STATUS_CODES } from 'node:http';
import { Counter, Registry } from 'prom-client';
import { startHttpServer, type RouteHandler, type RunningHttpServer } from '../common/http.ts';
import type { Logger } from '../common/log.ts';
import { mulberry32 } from '../common/random.ts';
import { RealClock, type SimClock } from './clock.ts';
import { eventTopic, type SimPodConfig } from './config.ts';
import { Engine } from './engine.ts';
import { encodeEventBatch } from '../vllm/events/encode.ts';
import { MsgpackWriter } from '../vllm/events/msgpack-writer.ts';
import { KvEventPublisher } from './events/publisher.ts';
import { requestHasher } from './hashing.ts';
import { debugRoutes, FaultGate } from './debug.ts';
import { registerVllmMetrics } from './metrics.ts';
import {
  chatCompletionsRoute,
  completionsRoute,
  healthRoute,
  modelsRoute,
  resetPrefixCacheRoute,
  withOpenAiErrors,
  type RouteContext,
} from './openai/routes.ts';
import { openAiErrorBody } from './openai/schemas.ts';
import type { LoraAdapter, SimRequest } from './request.ts';
import type { SimTokenizer } from './tokenizer.ts';

export interface SimPod {
  readonly podId: string;
  readonly port: number;
  readonly engine: Engine;
  readonly publisher: KvEventPublisher | null;
  readonly registry: Registry;
  close(): Promise<void>;
}

export interface SimPodDeps {
  tokenizer: SimTokenizer;
  log: Logger;
  clock?: SimClock;
}

export async function startSimPod(config: SimPodConfig, deps: SimPodDeps): Promise<SimPod> {
  const log = deps.log.child({ pod: config.podId });
  const clock = deps.clock ?? new RealClock(config.timeScale);
  const registry = new Registry();
  const startedWallMs = Date.now();
  const faultRandom = mulberry32(config.seed ^ 0x5bd1e995);

  const loras = new Map<string, LoraAdapter>();
  config.loraModules.forEach((m, i) => loras.set(m.name, { name: m.name, path: m.path, id: i + 1 }));

  let publisher: KvEventPublisher | null = null;
  if (config.kvEventsEndpoint) {
    publisher = new KvEventPublisher(
      {
        endpoint: config.kvEventsEndpoint,
        replayEndpoint: config.kvEventsReplayEndpoint,
        topic: eventTopic(config),
        bufferSteps: config.kvEventsBufferSteps,
        log,
      },
      mulberry32(config.seed ^ 0x27d4eb2f),
    );
    publisher.faults.dropRate = config.dropEventBatchRate;
    await publisher.start();
    if (config.publisherStallAfterMs !== null && config.publisherStallMs > 0) {
      const p = publisher;
      setTimeout(() => {
        log.warn('injected fault: kv event publisher stalls', { stallMs: config.publisherStallMs });
        p.stall(config.publisherStallMs);
      }, config.publisherStallAfterMs).unref();
    }
  }

  const seeds = new WeakMap<SimRequest, () => number>();
  const podRandom = mulberry32(config.seed);
  const tokenizer = deps.tokenizer;
  const vocab = tokenizer.sampleableIds;
  const writer = new MsgpackWriter(64 * 1024);
  const encodeOptions = { encoding: config.kvEventsEncoding, hashForm: config.kvEventsHash, dpRank: config.dpRank };

  const engine = new Engine({
    scheduler: {
      maxNumSeqs: config.maxNumSeqs,
      maxNumBatchedTokens: config.maxNumBatchedTokens,
      maxModelLen: config.maxModelLen,
      blockSize: config.blockSize,
      numBlocks: config.kvBlocks,
    },
    latency: config.latency,
    clock,
    sampler: (r) => {
      const next = seeds.get(r) ?? podRandom;
      return vocab[Math.floor(next() * vocab.length)]!;
    },
    sink: (ts, events) => {
      if (publisher) publisher.publish(encodeEventBatch(ts, events, encodeOptions, writer));
    },
    flushOnReset: config.kvEventsFlushOnReset,
  });
  const observer = registerVllmMetrics(
    registry,
    {
      modelName: config.model,
      engine: '0',
      blockSize: config.blockSize,
      numGpuBlocks: config.kvBlocks,
      maxLoras: loras.size > 0 ? config.maxLoras : null,
    },
    engine.scheduler,
    () => clock.now() / 1000,
  );
  engine.setObserver({
    ...observer,
    onFinished(request, simMs) {
      observer.onFinished?.(request, simMs);
      log.debug('request finished', {
        id: request.id,
        promptTokens: request.numPromptTokens,
        cachedTokens: request.numCachedTokens,
        outputTokens: request.numOutputTokens,
        ttftMs: request.firstTokenMs === null ? null : Math.round(request.firstTokenMs - request.arrivalMs),
        e2eMs: Math.round(simMs - request.arrivalMs),
        preemptions: request.numPreemptions,
      });
    },
  });
  if (publisher) {
    const stats = publisher.stats;
    const reported = { published: 0, dropped: 0, queueOverflow: 0, unsubscribed: 0, replayRequests: 0 };
    new Counter({
      name: 'kvroute_sim_kv_event_batches_total',
      help:
        'KV event batches by outcome: published on PUB, dropped by fault injection, lost to a full queue (replay only), ' +
        'or, in connect mode, aged out of the replay buffer before any subscriber subscribed.',
      labelNames: ['outcome'],
      registers: [registry],
      collect() {
        for (const [outcome, key] of [
          ['published', 'published'],
          ['dropped', 'dropped'],
          ['queue_full', 'queueOverflow'],
          ['no_subscriber', 'unsubscribed'],
        ] as const) {
          this.inc({ outcome }, stats[key] - reported[key]);
          reported[key] = stats[key];
        }
      },
    });
    new Counter({
      name: 'kvroute_sim_kv_event_replay_requests_total',
      help: 'Replay requests served on the ROUTER socket.',
      registers: [registry],
      collect() {
        this.inc(stats.replayRequests - reported.replayRequests);
        reported.replayRequests = stats.replayRequests;
      },
    });
  }
  engine.start();

  const ready = () => Date.now() - startedWallMs >= config.startupDelayMs;
  const hashConfig = { blockSize: config.blockSize, hashSeed: config.hashSeed };
  const ctx: RouteContext = {
    podId: config.podId,
    model: config.model,
    maxModelLen: config.maxModelLen,
    blockSize: config.blockSize,
    engine,
    tokenizer,
    loras,
    hasherFor: (lora, salt) => requestHasher(hashConfig, lora, salt),
    now: () => clock.now(),
    registerSeed: (request, seed) => {
      seeds.set(request, mulberry32(seed ?? Math.floor(podRandom() * 2 ** 32)));
    },
    ready,
    shouldFail: () => config.failureRate > 0 && faultRandom() < config.failureRate,
    createdAt: Date.now(),
  };

  const faults = new FaultGate();
  const hung = () => faults.hang;
  const routes = {
    'GET /health': withOpenAiErrors(ctx, healthRoute(ctx)),
    'GET /v1/models': withOpenAiErrors(ctx, modelsRoute(ctx)),
    'POST /v1/completions': withOpenAiErrors(ctx, completionsRoute(ctx)),
    'POST /v1/chat/completions': withOpenAiErrors(ctx, chatCompletionsRoute(ctx)),
    'POST /reset_prefix_cache': withOpenAiErrors(ctx, resetPrefixCacheRoute(ctx)),
  };
  const served: Record<string, RouteHandler> = {};
  if (config.debugEndpoints) {
    for (const [key, handler] of Object.entries(routes)) served[key] = faults.gate(handler, hung);
    served['GET /metrics'] = faults.gate(
      async (_req, res) => {
        const text = await registry.metrics();
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(text);
      },
      () => faults.hang || faults.metricsStall,
    );
    Object.assign(
      served,
      debugRoutes({
        podId: config.podId,
        blockSize: config.blockSize,
        pool: engine.scheduler.kv.pool,
        publisher,
        hasher: ctx.hasherFor(null, null),
        faults,
      }),
    );
  } else {
    Object.assign(served, routes);
  }

  let http: RunningHttpServer;
  try {
    http = await startHttpServer({
      host: config.host,
      port: config.port,
      log,
      registry,
      ready,
      routes: served,
      // Unknown routes and wrong methods answer as vLLM's HTTPException handler does: the status phrase as type.
      errorBody: (status, message) => openAiErrorBody(status, message, null, status === 500 ? undefined : STATUS_CODES[status]),
    });
  } catch (err) {
    await engine.stop();
    await publisher?.close(0);
    throw err;
  }
  log.info('simulated vllm pod ready', {
    port: http.port,
    model: config.model,
    blockSize: config.blockSize,
    kvBlocks: config.kvBlocks,
    hashSeed: config.hashSeed,
    tokenizer: tokenizer.source,
    // As bound (port 0 resolved), so whoever started the pod can find its sockets.
    kvEvents: publisher?.endpoint ?? null,
    kvEventsReplay: publisher?.replayEndpoint ?? null,
    timeScale: config.timeScale,
  });

  return {
    podId: config.podId,
    port: http.port,
    engine,
    publisher,
    registry,
    async close() {
      faults.releaseParked();
      await http.close();
      await engine.stop();
      await publisher?.close();
    },
  };
}
