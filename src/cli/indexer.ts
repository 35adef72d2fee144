// `kvroute indexer`: parses flags (over an optional config file), then runs the indexer server
// until SIGTERM. Flags override the file; the merged result is validated by the config schema.
// Discovery mode also loads a kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config or in-cluster).

import { KubeConfig } from '@kubernetes/client-node';
import { Command, Option } from 'commander';
import { parseIndexerConfig, readIndexerConfigFile, type IndexerPod } from '../api/indexer-config.ts';
import { LOG_LEVELS, createLogger } from '../common/log.ts';
import { createRegistry } from '../common/metrics.ts';
import { onShutdown } from '../common/shutdown.ts';
import { startIndexerServer } from '../indexer/server.ts';

interface IndexerFlags {
  config?: string;
  zmqBind?: string;
  pod: IndexerPod[];
  discoverPods?: boolean;
  discoveryNamespace?: string;
  discoverySelector?: Record<string, string>;
  podZmqPort?: number;
  /** 'none': the pods have no replay endpoint (commander cannot carry a null). */
  podReplayPort?: number | 'none';
  notReadyGrace?: number;
  discoveryDpSize?: number;
  kubeconfig?: string;
  sourceIdleTimeout?: number;
  replayEndpointTemplate?: string;
  dpSize?: number;
  listenHost?: string;
  httpPort?: number;
  grpcPort?: number;
  metricsPort?: number;
  blockSize?: number;
  hashSeed?: string;
  engineKeyParity?: boolean;
  loraModule: Array<[string, string]>;
  maxKeys?: number;
  maxPodsPerKey?: number;
  maxBlocksPerPod?: number;
  maxEventBatchBytes?: number;
  maxEventBatchEvents?: number;
  zmqMaxMessageBytes?: number;
  maxHttpBodyBytes?: number;
  grpcMaxReceiveBytes?: number;
  tokenizer: Array<[string, string]>;
  defaultTokenizer?: string;
  harmonyStartDate?: string;
  tokenizerWorkers?: number;
  tokenizerCacheBytes?: number;
  logLevel?: string;
}

function intFlag(flag: string, min: number) {
  return (text: string): number => {
    const n = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min) throw new Error(`${flag} expects an integer >= ${min}, got "${text}"`);
    return n;
  };
}

function podFlag(text: string, previous: IndexerPod[]): IndexerPod[] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new Error(`--pod expects NAME=ENDPOINT[,REPLAY_ENDPOINT], got "${text}"`);
  const [endpoint, replayEndpoint, extra] = text.slice(eq + 1).split(',');
  if (!endpoint || extra !== undefined) throw new Error(`--pod expects NAME=ENDPOINT[,REPLAY_ENDPOINT], got "${text}"`);
  return [...previous, { name: text.slice(0, eq), endpoint, ...(replayEndpoint ? { replayEndpoint } : {}) }];
}

/** `k=v,k2=v2` as a label map; repeating the flag adds labels. */
function selectorFlag(text: string, previous: Record<string, string> | undefined): Record<string, string> {
  const labels = { ...previous };
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new Error(`--discovery-selector expects KEY=VALUE[,KEY=VALUE...], got "${text}"`);
    labels[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return labels;
}

function replayPortFlag(text: string): number | 'none' {
  return text === 'none' ? 'none' : intFlag('--pod-replay-port', 1)(text);
}

/** A repeatable `--flag KEY=VALUE` collected as pairs. */
function pairFlag(flag: string, shape: string) {
  return (text: string, previous: Array<[string, string]>): Array<[string, string]> => {
    const eq = text.indexOf('=');
    if (eq <= 0 || eq === text.length - 1) throw new Error(`${flag} expects ${shape}, got "${text}"`);
    return [...previous, [text.slice(0, eq), text.slice(eq + 1)]];
  };
}

function section(file: Record<string, unknown>, key: string): Record<string, unknown> {
  const value = file[key];
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? { ...(value as Record<string, unknown>) } : {};
}

/**
 * zmq.discovery from the file with discovery flags over it; undefined when neither turns it on. The
 * namespace falls back to $POD_NAMESPACE (the downward API gives it to the pod).
 */
function mergeDiscovery(zmq: Record<string, unknown>, flags: IndexerFlags, env: NodeJS.ProcessEnv): Record<string, unknown> | undefined {
  const given = {
    '--discovery-namespace': flags.discoveryNamespace,
    '--discovery-selector': flags.discoverySelector,
    '--pod-zmq-port': flags.podZmqPort,
    '--pod-replay-port': flags.podReplayPort,
    '--not-ready-grace': flags.notReadyGrace,
    '--discovery-dp-size': flags.discoveryDpSize,
  };
  if (!flags.discoverPods && zmq.discovery === undefined) {
    const stray = Object.entries(given).find(([, v]) => v !== undefined);
    if (stray) throw new Error(`${stray[0]} needs --discover-pods (or zmq.discovery in the config file)`);
    return undefined;
  }
  const discovery = section(zmq, 'discovery');
  if (flags.discoveryNamespace !== undefined) discovery.namespace = flags.discoveryNamespace;
  else if (discovery.namespace === undefined && env.POD_NAMESPACE) discovery.namespace = env.POD_NAMESPACE;
  if (flags.discoverySelector !== undefined) discovery.selector = flags.discoverySelector;
  if (flags.podZmqPort !== undefined) discovery.port = flags.podZmqPort;
  if (flags.podReplayPort !== undefined) discovery.replayPort = flags.podReplayPort === 'none' ? null : flags.podReplayPort;
  if (flags.notReadyGrace !== undefined) discovery.notReadyGraceSeconds = flags.notReadyGrace;
  if (flags.discoveryDpSize !== undefined) discovery.dataParallelSize = flags.discoveryDpSize;
  return discovery;
}

/** The config file's contents with every given flag written over it. */
export function mergeFlags(
  file: Record<string, unknown>,
  flags: IndexerFlags,
  env: NodeJS.ProcessEnv = process.env,
): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...file };
  const zmq = section(file, 'zmq');
  if (flags.zmqBind !== undefined) zmq.bind = flags.zmqBind;
  if (flags.pod.length > 0) zmq.pods = flags.pod;
  const discovery = mergeDiscovery(zmq, flags, env);
  if (discovery !== undefined) zmq.discovery = discovery;
  if (flags.sourceIdleTimeout !== undefined) zmq.sourceIdleTimeoutSeconds = flags.sourceIdleTimeout;
  if (flags.replayEndpointTemplate !== undefined) zmq.replayEndpointTemplate = flags.replayEndpointTemplate;
  if (flags.dpSize !== undefined) zmq.dataParallelSize = flags.dpSize;
  if (flags.maxEventBatchBytes !== undefined) zmq.maxBatchBytes = flags.maxEventBatchBytes;
  if (flags.maxEventBatchEvents !== undefined) zmq.maxBatchEvents = flags.maxEventBatchEvents;
  if (flags.zmqMaxMessageBytes !== undefined) zmq.maxMessageBytes = flags.zmqMaxMessageBytes;
  merged.zmq = zmq;
  const http = section(file, 'http');
  const grpc = section(file, 'grpc');
  if (flags.listenHost !== undefined) http.host = grpc.host = flags.listenHost;
  if (flags.httpPort !== undefined) http.port = flags.httpPort;
  if (flags.grpcPort !== undefined) grpc.port = flags.grpcPort;
  if (flags.maxHttpBodyBytes !== undefined) http.maxBodyBytes = flags.maxHttpBodyBytes;
  if (flags.grpcMaxReceiveBytes !== undefined) grpc.maxReceiveBytes = flags.grpcMaxReceiveBytes;
  merged.http = http;
  merged.grpc = grpc;
  if (flags.metricsPort !== undefined) merged.metrics = { ...section(file, 'metrics'), port: flags.metricsPort };
  if (flags.blockSize !== undefined) merged.blockSize = flags.blockSize;
  if (flags.hashSeed !== undefined) merged.hashSeed = flags.hashSeed;
  if (flags.engineKeyParity !== undefined) merged.engineKeyParity = flags.engineKeyParity;
  if (flags.loraModule.length > 0) merged.loras = { ...section(file, 'loras'), ...Object.fromEntries(flags.loraModule) };
  const index = section(file, 'index');
  if (flags.maxKeys !== undefined) index.maxKeys = flags.maxKeys;
  if (flags.maxPodsPerKey !== undefined) index.maxPodsPerKey = flags.maxPodsPerKey;
  if (flags.maxBlocksPerPod !== undefined) index.maxBlocksPerPod = flags.maxBlocksPerPod;
  merged.index = index;
  if (flags.tokenizer.length > 0) merged.tokenizers = { ...section(file, 'tokenizers'), ...Object.fromEntries(flags.tokenizer) };
  if (flags.defaultTokenizer !== undefined) merged.defaultTokenizer = flags.defaultTokenizer;
  const tokenization = section(file, 'tokenization');
  if (flags.harmonyStartDate !== undefined) tokenization.harmonyStartDate = flags.harmonyStartDate;
  if (flags.tokenizerWorkers !== undefined) tokenization.workers = flags.tokenizerWorkers;
  if (flags.tokenizerCacheBytes !== undefined) tokenization.cacheMaxBytes = flags.tokenizerCacheBytes;
  merged.tokenization = tokenization;
  if (flags.logLevel !== undefined) merged.logLevel = flags.logLevel;
  return merged;
}

function loadKubeConfig(file: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (file) kc.loadFromFile(file);
    else kc.loadFromDefault();
  } catch (err) {
    throw new Error(`cannot load kubeconfig ${file ?? '(default locations)'}: ${(err as Error).message}`);
  }
  if (!kc.getCurrentCluster()) throw new Error(`kubeconfig ${file ?? '(default locations)'} has no current cluster; discovery needs one`);
  return kc;
}

export function command(): Command {
  return new Command('indexer')
    .option('--config <file>', 'indexer config file (YAML or JSON); flags override it')
    .option('--zmq-bind <endpoint>', 'central mode: bind a SUB socket pods publish to, e.g. tcp://0.0.0.0:5557')
    .option('--pod <name=endpoint[,replay]>', "per-pod mode: connect to a pod's publisher (repeatable)", podFlag, [])
    .option('--discover-pods', 'discovery mode: connect to every Ready pod of the pool listed by the Kubernetes API')
    .option('--discovery-namespace <ns>', "namespace of the pool's pods (default $POD_NAMESPACE)")
    .option(
      '--discovery-selector <k=v,...>',
      "labels of the pool's pods; the serving label (zmq.discovery.servingLabel, default llm-d.ai/inferenceServing=true) is always added",
      selectorFlag,
    )
    .option('--pod-zmq-port <port>', "port each pod's KV-event publisher binds (default 5557)", intFlag('--pod-zmq-port', 1))
    .option('--pod-replay-port <port|none>', "port each pod's replay endpoint binds, or none (default 5558)", replayPortFlag)
    .option(
      '--not-ready-grace <seconds>',
      'how long a NotReady pod keeps its subscription and entries (default 30)',
      intFlag('--not-ready-grace', 0),
    )
    .option(
      '--discovery-dp-size <n>',
      'discovery mode: data-parallel ranks per pod; rank r publishes on --pod-zmq-port + r and replays on --pod-replay-port + r (default 1)',
      intFlag('--discovery-dp-size', 1),
    )
    .option('--kubeconfig <path>', 'kubeconfig for discovery (default: $KUBECONFIG, ~/.kube/config, or in-cluster)')
    .option(
      '--source-idle-timeout <seconds>',
      'forget a source (and its index entries) that sent nothing this long; 0 never (default 0: a pod serving only cache hits is silent but its blocks stay valid)',
      intFlag('--source-idle-timeout', 0),
    )
    .option(
      '--replay-endpoint-template <endpoint>',
      "central mode: each pod's replay endpoint from its topic's pod id, e.g. tcp://{pod}:5558 ({host}: the pod id without :port; DP rank r adds r to the port)",
    )
    .option(
      '--dp-size <n>',
      'central mode: data-parallel ranks per pod; rank r publishes to the --zmq-bind port + r, so ports port..port+n-1 are bound (default 1)',
      intFlag('--dp-size', 1),
    )
    .option(
      '--listen-host <host>',
      "address the HTTP and gRPC scoring servers listen on (default 0.0.0.0; the operator's sidecar indexer.yaml sets 127.0.0.1)",
    )
    .option('--http-port <port>', 'HTTP port: /v1/score, /v1/tokenize, /v1/pods, /metrics (default 8081)', intFlag('--http-port', 0))
    .option('--grpc-port <port>', 'gRPC port for the router (default 9004)', intFlag('--grpc-port', 0))
    .option(
      '--metrics-port <port>',
      'a separate listener on 0.0.0.0 (metrics.host in the file) with only /metrics, /healthz and /readyz (default: none)',
      intFlag('--metrics-port', 0),
    )
    .option('--block-size <n>', 'tokens per block, as the vLLM pool runs (default 16)', intFlag('--block-size', 1))
    .option('--hash-seed <seed>', "the pool's PYTHONHASHSEED (default: unset)")
    .option('--engine-key-parity', 'the pool runs sha256_cbor with --hash-seed: compute engine keys instead of learning them')
    .option(
      '--lora-module <name=path>',
      "a LoRA adapter as the pool's vLLM --lora-modules name=path (repeatable; parity mode hashes the path)",
      pairFlag('--lora-module', 'NAME=PATH'),
      [],
    )
    .option(
      '--max-keys <n>',
      'bound on indexed block keys (default 4000000; CLOCK eviction, second chance on store and on lookup)',
      intFlag('--max-keys', 1),
    )
    .option('--max-pods-per-key <n>', 'bound on pods remembered per block key', intFlag('--max-pods-per-key', 1))
    .option(
      '--max-blocks-per-pod <n>',
      'bound on index entries one pod holds; a BlockStored past it is dropped and counted (default 1048576)',
      intFlag('--max-blocks-per-pod', 1),
    )
    .option(
      '--max-event-batch-bytes <n>',
      'KV-event payloads larger than this are dropped undecoded and counted (default 16777216)',
      intFlag('--max-event-batch-bytes', 1),
    )
    .option(
      '--max-event-batch-events <n>',
      'KV-event batches with more events are dropped and counted (default 65536)',
      intFlag('--max-event-batch-events', 1),
    )
    .option(
      '--zmq-max-message-bytes <n>',
      'ZMQ_MAXMSGSIZE: a publisher sending a larger frame is disconnected before it is buffered (default 67108864)',
      intFlag('--zmq-max-message-bytes', 1),
    )
    .option(
      '--max-http-body-bytes <n>',
      'larger /v1/score and /v1/tokenize bodies are refused with 413 (default 16777216)',
      intFlag('--max-http-body-bytes', 1),
    )
    .option(
      '--grpc-max-receive-bytes <n>',
      'larger gRPC Score requests are refused with RESOURCE_EXHAUSTED (default 16777216)',
      intFlag('--grpc-max-receive-bytes', 1),
    )
    .option(
      '--tokenizer <model=source>',
      'tokenizer for a model: npm:qwen3|llama3_1|gptoss, tiktoken:o200k_harmony, dir:/path (repeatable; model "*" for any)',
      pairFlag('--tokenizer', 'MODEL=SOURCE'),
      [],
    )
    .option(
      '--default-tokenizer <source|none>',
      'tokenizer for models without --tokenizer: Qwen3, Llama 3.1 and gpt-oss models get their own, others this one (default npm:qwen3, as kvroute sim; none: reject them)',
    )
    .option('--harmony-start-date <yyyy-mm-dd>', "conversation start date for gpt-oss prompts (match the pool's VLLM_SYSTEM_START_DATE)")
    .option(
      '--tokenizer-workers <n>',
      'worker threads that tokenize (default 1; 0 tokenizes on the event loop)',
      intFlag('--tokenizer-workers', 0),
    )
    .option(
      '--tokenizer-cache-bytes <n>',
      "bound of each model's tokenization cache in each worker (default 67108864; 0: no cache)",
      intFlag('--tokenizer-cache-bytes', 0),
    )
    .addOption(new Option('--log-level <level>', 'log level (default info)').choices(LOG_LEVELS))
    .action(async (flags: IndexerFlags) => {
      const file = flags.config ? await readIndexerConfigFile(flags.config) : {};
      const config = parseIndexerConfig(mergeFlags(file, flags), flags.config ? `${flags.config} (with flags)` : '(flags)');
      const log = createLogger({ level: config.logLevel, component: 'indexer' });
      const registry = createRegistry();
      const kubeConfig = config.zmq.discovery ? loadKubeConfig(flags.kubeconfig) : undefined;
      const server = await startIndexerServer(config, { log, registry, kubeConfig });
      onShutdown(log, [() => server.close()]);
    });
}
