// The `kvroute indexer` process: wires KV-event ingestion (ZMQ) into the block index, loads the
// tokenizers, and serves scoring over gRPC (for the router) and HTTP JSON (for people and tests),
// with Prometheus metrics. In discovery mode it subscribes to the pods the Kubernetes API lists and is
// ready only once the first list is applied. close() stops HTTP and gRPC first, then ingestion.

import type http from 'node:http';
import type { KubeConfig } from '@kubernetes/client-node';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { IndexerConfig } from '../api/indexer-config.ts';
import { HttpError, readJson, sendJson, startHttpServer, type RouteHandler } from '../common/http.ts';
import type { Logger } from '../common/log.ts';
import { createPodDiscovery, type PodDiscovery } from './discovery/pod-discovery.ts';
import { EventIngestor } from './events/ingestor.ts';
import { SourceTrust } from './events/source-trust.ts';
import { ReadyPods } from './discovery/ready-pods.ts';
import { endpointForRank, replayEndpointFromTemplate } from '../vllm/events/topic.ts';
import { startGrpcServer } from './grpc/server.ts';
import { BlockIndex } from './index/block-index.ts';
import { RequestError, parseScoreBody } from './scoring/request.ts';
import { IndexerService } from './scoring/service.ts';
import { TokenizerPool } from '../tokenize/pool.ts';
import { TokenizeShedError, TokenizerSet, type TokenizeCall, type Tokenization } from '../tokenize/tokenizers.ts';

/**
 * Bound on the tokenizer queue, as time to drain it, for calls without a deadline of their own (HTTP,
 * gRPC clients that set none). gRPC calls from the router carry its timeout (50 ms by default) as their
 * deadline, which bounds their wait more tightly: work that cannot finish in time is refused at once.
 */
const QUEUE_BOUND_MS = 1_000;

/** HTTP statuses for shed calls: the gRPC-to-HTTP mapping's 429 for RESOURCE_EXHAUSTED; 499 as nginx logs a client gone. */
const SHED_HTTP_STATUS = { overloaded: 429, deadline: 504, cancelled: 499 } as const;

export interface IndexerServer {
  httpPort: number;
  grpcPort: number;
  /** The probe and metrics listener's port, when config.metrics asks for one. */
  metricsPort?: number;
  service: IndexerService;
  close(): Promise<void>;
}

export interface IndexerServerDeps {
  log: Logger;
  registry: Registry;
  /** Cluster access for zmq.discovery; required when the config turns discovery on. */
  kubeConfig?: KubeConfig;
}

function requestMetrics(registry: Registry) {
  const requests = new Counter({
    name: 'kvroute_indexer_requests_total',
    help: 'Indexer API requests by protocol, endpoint and result code.',
    labelNames: ['protocol', 'endpoint', 'code'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'kvroute_indexer_request_duration_seconds',
    help: 'Indexer API request latency by protocol and endpoint.',
    labelNames: ['protocol', 'endpoint'],
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
    registers: [registry],
  });
  return {
    observe(protocol: 'http' | 'grpc', endpoint: string, code: string | number, seconds: number) {
      requests.inc({ protocol, endpoint, code: String(code) });
      duration.observe({ protocol, endpoint }, seconds);
    },
  };
}

/** Parses a body of at most maxBytes (413 past it), turning a client mistake into a 400 that names the field. */
async function parsedBody(req: http.IncomingMessage, maxBytes: number) {
  try {
    return parseScoreBody(await readJson(req, maxBytes));
  } catch (err) {
    if (err instanceof RequestError) throw new HttpError(400, err.message);
    throw err;
  }
}

async function asHttpError<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof RequestError) throw new HttpError(400, err.message);
    if (err instanceof TokenizeShedError) throw new HttpError(SHED_HTTP_STATUS[err.reason], err.message);
    throw err;
  }
}

/** An HTTP request as a call that is cancelled when the client disconnects before the response is sent. */
function httpCall(res: http.ServerResponse): TokenizeCall {
  const aborted = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) aborted.abort();
  });
  return { signal: aborted.signal };
}

export async function startIndexerServer(config: IndexerConfig, deps: IndexerServerDeps): Promise<IndexerServer> {
  const { log, registry } = deps;
  if (config.zmq.discovery && !deps.kubeConfig)
    throw new Error('zmq.discovery is set but no kubeconfig was given to reach the Kubernetes API');
  const metrics = requestMetrics(registry);
  let ready = false;
  const closers: Array<() => Promise<void> | void> = [];
  const closeAll = async () => {
    for (const close of closers.splice(0).reverse()) {
      try {
        await close();
      } catch (err) {
        log.error('close failed', { err });
      }
    }
  };

  try {
    const tokenizerOptions = {
      sources: config.tokenizers,
      defaultSource: config.defaultTokenizer,
      cacheMaxBytes: config.tokenization.cacheMaxBytes,
      harmonyStartDate: config.tokenization.harmonyStartDate,
      registry,
      log: log.child({ component: 'tokenize' }),
    };
    const tokenizers: Tokenization =
      config.tokenization.workers > 0
        ? new TokenizerPool({ ...tokenizerOptions, workers: config.tokenization.workers, maxQueueMs: QUEUE_BOUND_MS })
        : new TokenizerSet(tokenizerOptions);
    closers.push(() => tokenizers.close());
    await tokenizers.load();

    const index = new BlockIndex({
      blockSize: config.blockSize,
      maxKeys: config.index.maxKeys,
      maxPodsPerKey: config.index.maxPodsPerKey,
      maxBlocksPerPod: config.index.maxBlocksPerPod,
      tierWeights: config.tierWeights,
      hashSeed: config.hashSeed,
      engineKeyParity: config.engineKeyParity,
      loraPaths: config.loras,
      registry,
      log: log.child({ component: 'index' }),
    });

    const replayByPod = new Map(config.zmq.pods.map((p) => [p.name, p.replayEndpoint]));
    const replayTemplate = config.zmq.replayEndpointTemplate;
    // Central mode with discovery: the pods publish to us, and only the pool's Ready pods may (ZAP on the
    // peer address, and the pod a topic names); discovery keeps that set instead of connecting.
    const readyPods: ReadyPods | undefined =
      config.zmq.bind && config.zmq.discovery
        ? new ReadyPods(
            async (podId) => {
              await ingestor.disconnectPod(podId);
              index.removePod(podId);
            },
            (ip: string): boolean => discovery?.hasPod(ip) ?? false,
          )
        : undefined;
    const ingestor = new EventIngestor({
      sink: index,
      log: log.child({ component: 'events' }),
      registry,
      replayEndpoints: (podId) =>
        replayByPod.get(podId) ??
        (replayTemplate ? replayEndpointFromTemplate(replayTemplate, podId) : undefined) ??
        readyPods?.replayEndpoint(podId),
      sourceIdleTimeoutMs: config.zmq.sourceIdleTimeoutSeconds * 1000,
      maxBatchBytes: config.zmq.maxBatchBytes,
      maxBatchEvents: config.zmq.maxBatchEvents,
      zmqMaxMessageBytes: config.zmq.maxMessageBytes,
    });
    closers.push(() => ingestor.close());
    // vLLM's data-parallel rank r publishes to the bind port + r (the config checks the port is fixed).
    const zmqBound: string[] = [];
    const trust = readyPods ? await SourceTrust.start(readyPods, log.child({ component: 'events' }), registry) : undefined;
    if (trust) closers.push(() => trust.close());
    if (config.zmq.bind)
      for (let rank = 0; rank < config.zmq.dataParallelSize; rank++)
        zmqBound.push(await ingestor.bind(endpointForRank(config.zmq.bind, rank), trust));
    for (const pod of config.zmq.pods) await ingestor.connectPod(pod.name, pod.endpoint, pod.replayEndpoint);

    const discovery: PodDiscovery | undefined =
      config.zmq.discovery && deps.kubeConfig
        ? createPodDiscovery({
            kubeConfig: deps.kubeConfig,
            config: config.zmq.discovery,
            log: log.child({ component: 'discovery' }),
            registry,
            subscriptions: readyPods ?? {
              connect: (podId, endpoint, replayEndpoint) => ingestor.connectPod(podId, endpoint, replayEndpoint),
              disconnect: async (podId) => {
                await ingestor.disconnectPod(podId);
                // Right away, so scores stop naming the pod now; the ingestor's queued forget then
                // clears whatever batches still in flight from it add.
                index.removePod(podId);
              },
            },
          })
        : undefined;
    if (discovery) closers.push(() => discovery.stop());

    const service = new IndexerService({
      index,
      tokenizers,
      log: log.child({ component: 'service' }),
      loraAdapters: Object.keys(config.loras),
      registry,
    });

    const isReady = () => ready && (discovery?.synced ?? true);
    const grpcServer = await startGrpcServer({
      host: config.grpc.host,
      port: config.grpc.port,
      maxReceiveBytes: config.grpc.maxReceiveBytes,
      service,
      log: log.child({ component: 'grpc' }),
      ready: isReady,
      observe: (code, seconds) => metrics.observe('grpc', 'Score', code, seconds),
    });
    closers.push(() => grpcServer.close());

    const measured =
      (endpoint: string, handler: RouteHandler): RouteHandler =>
      (req, res, url) => {
        const started = performance.now();
        res.once('finish', () => metrics.observe('http', endpoint, res.statusCode, (performance.now() - started) / 1000));
        return handler(req, res, url);
      };

    const httpServer = await startHttpServer({
      host: config.http.host,
      port: config.http.port,
      log: log.child({ component: 'http' }),
      registry,
      ready: isReady,
      routes: {
        'POST /v1/score': measured('/v1/score', async (req, res) => {
          const parsed = await parsedBody(req, config.http.maxBodyBytes);
          const call = httpCall(res);
          sendJson(res, 200, await asHttpError(() => service.scoreParsed(parsed, call)));
        }),
        'POST /v1/tokenize': measured('/v1/tokenize', async (req, res) => {
          const parsed = await parsedBody(req, config.http.maxBodyBytes);
          const call = httpCall(res);
          const t = await asHttpError(() => service.tokenize(parsed, call));
          sendJson(res, 200, {
            model: t.model,
            input: t.input,
            count: t.tokens.length,
            tokens: t.tokens,
            ...(t.rendered !== undefined ? { rendered: t.rendered } : {}),
          });
        }),
        'GET /v1/pods': measured('/v1/pods', (_req, res) => {
          const { pods, ...summary } = index.stats();
          const discovered = discovery ? { discovery: { synced: discovery.synced, pods: discovery.connected() } } : {};
          sendJson(res, 200, { pods, index: summary, ingestion: ingestor.stats(), ...discovered });
        }),
      },
    });
    closers.push(() => httpServer.close());
    // Probes and scrapes only: no route here reads the index or takes a request body.
    const metricsServer = config.metrics
      ? await startHttpServer({
          host: config.metrics.host,
          port: config.metrics.port,
          log: log.child({ component: 'metrics' }),
          registry,
          ready: isReady,
          routes: {},
        })
      : undefined;
    if (metricsServer) closers.push(() => metricsServer.close());

    ready = true;
    // Not awaited: the servers answer /healthz while the first list is retried (say, RBAC missing).
    discovery?.start().catch((err: unknown) => log.error('pod discovery failed to start', { err }));
    log.info('indexer ready', {
      httpPort: httpServer.port,
      grpcPort: grpcServer.port,
      ...(metricsServer ? { metricsPort: metricsServer.port } : {}),
      mode: config.zmq.bind ? 'central' : config.zmq.discovery ? 'discovery' : 'per-pod',
      // Central mode: whether only the pool's Ready pods may publish (with discovery) or anyone who reaches the port.
      ...(config.zmq.bind ? { publishers: readyPods ? 'ready-pods' : 'any' } : {}),
      zmqBind: config.zmq.bind,
      // As bound, one per data-parallel rank (port 0 resolved), so whoever started the indexer can point publishers at it.
      zmqBound,
      pods: config.zmq.pods.length,
      ...(config.zmq.discovery
        ? { discoveryNamespace: config.zmq.discovery.namespace, discoverySelector: config.zmq.discovery.selector }
        : {}),
      blockSize: config.blockSize,
      models: tokenizers.models,
    });
    return {
      httpPort: httpServer.port,
      grpcPort: grpcServer.port,
      ...(metricsServer ? { metricsPort: metricsServer.port } : {}),
      service,
      close: async () => {
        ready = false;
        await closeAll();
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
