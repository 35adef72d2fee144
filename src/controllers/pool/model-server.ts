// Desired vLLM Deployment and Service of an InferencePool that has a modelServer: the arguments that
// make vLLM's prefix cache and KV events match what the indexer expects, byte for byte, and a pod a
// real cluster keeps running: resource requests, /dev/shm, a model cache, probes that survive weight
// loading and busy engines, one-at-a-time rollouts on scarce GPUs, the pool's LoRA adapters, and
// restricted pod security.

import type {
  V1Container,
  V1Deployment,
  V1EnvVar,
  V1PodSpec,
  V1Probe,
  V1ResourceRequirements,
  V1Service,
  V1Volume,
} from '@kubernetes/client-node';
import type { InferencePool, ModelServerSpec } from '../../api/inference-pool.ts';
import { names, ownedMeta, podSelector, servedModelName } from '../objects.ts';
import type { LoraAdapter } from './lora.ts';
import { restrictPodSpec, TMP_DIR, VLLM_HOME_DIR, type ScratchDir } from './security.ts';

const PREFIX_CACHING_HASH_ALGO = 'sha256_cbor';

/** Where the model cache is mounted; HF_HOME points here so weights land on that volume. */
const MODEL_CACHE_DIR = '/model-cache';
const MODEL_CACHE_VOLUME = 'model-cache';

/** Requests for a resource the pool names neither a request nor a limit for: without them the pod is BestEffort, evicted first. */
const DEFAULT_REQUESTS: Readonly<Record<string, string>> = { cpu: '4', memory: '16Gi' };
const GPU_RESOURCE = 'nvidia.com/gpu';
/** At most this many adapter slots by default: vLLM reserves GPU memory for each. */
const DEFAULT_MAX_LORAS_CAP = 8;

/**
 * vLLM's --kv-events-config: each pod binds its publisher and replay endpoint ("*" makes vLLM bind),
 * and every router replica's indexer discovers the pods and connects to each (ADR 0007).
 */
function kvEventsConfig(pool: InferencePool, model: string): string {
  return JSON.stringify({
    enable_kv_cache_events: true,
    publisher: 'zmq',
    endpoint: `tcp://*:${pool.spec.indexer.eventPort}`,
    ...(pool.spec.indexer.replayPort === null ? {} : { replay_endpoint: `tcp://*:${pool.spec.indexer.replayPort}` }),
    topic: `kv@$(POD_IP)@${model}`,
  });
}

/** --enable-lora and the adapters; vLLM's --lora-modules takes every adapter after one flag (repeating it keeps only the last). */
function loraArgs(server: ModelServerSpec, adapters: readonly LoraAdapter[]): string[] {
  if (adapters.length === 0) return [];
  const maxLoras = server.lora?.maxLoras ?? Math.min(adapters.length, DEFAULT_MAX_LORAS_CAP);
  return [
    '--enable-lora',
    `--max-loras=${maxLoras}`,
    ...(server.lora?.maxLoraRank !== undefined ? [`--max-lora-rank=${server.lora.maxLoraRank}`] : []),
    '--lora-modules',
    ...adapters.map((a) => `${a.name}=${a.source}`),
  ];
}

/** vLLM's command line; `adapters` are the pool's LoRA adapters (pool/lora.ts), loaded at start. */
export function vllmArgs(pool: InferencePool, server: ModelServerSpec, adapters: readonly LoraAdapter[] = []): string[] {
  const model = pool.spec.model;
  // The CRD requires spec.model with a modelServer; a pool that reached here without one was not validated.
  if (!model) throw new Error(`InferencePool ${pool.metadata.name}: spec.model is required with spec.modelServer`);
  const served = servedModelName(pool)!;
  const args = [
    model.name,
    `--port=${server.port}`,
    `--served-model-name=${served}`,
    `--tensor-parallel-size=${server.tensorParallelSize}`,
    '--enable-prefix-caching',
    `--block-size=${server.blockSize}`,
    `--gpu-memory-utilization=${server.gpuMemoryUtilization}`,
  ];
  if (server.maxModelLen !== undefined) args.push(`--max-model-len=${server.maxModelLen}`);
  args.push(
    `--kv-cache-dtype=${server.kvCacheDtype}`,
    '--prefix-caching-hash-algo',
    PREFIX_CACHING_HASH_ALGO,
    `--kv-events-config=${kvEventsConfig(pool, served)}`,
  );
  return [...args, ...loraArgs(server, adapters), ...(server.extraArgs ?? [])];
}

const isGpu = (resource: string) => resource.endsWith('/gpu');

/**
 * The container's resources: the pool's, plus default cpu/memory requests for what it leaves unnamed
 * (a limit alone already implies the request), plus one GPU per tensor-parallel rank when it names no GPU.
 */
export function modelServerResources(server: ModelServerSpec): V1ResourceRequirements {
  const requests: Record<string, string> = {};
  const limits: Record<string, string> = {};
  for (const [k, v] of Object.entries(server.resources?.requests ?? {})) requests[k] = String(v);
  for (const [k, v] of Object.entries(server.resources?.limits ?? {})) limits[k] = String(v);
  for (const [k, v] of Object.entries(DEFAULT_REQUESTS)) if (!(k in requests) && !(k in limits)) requests[k] = v;
  const namesGpu = [...Object.keys(requests), ...Object.keys(limits)].some(isGpu);
  if (server.tensorParallelSize > 1 && !namesGpu) limits[GPU_RESOURCE] = String(server.tensorParallelSize);
  return { requests, ...(Object.keys(limits).length > 0 ? { limits } : {}) };
}

function requestsGpu(resources: V1ResourceRequirements): boolean {
  return Object.entries({ ...resources.requests, ...resources.limits }).some(([k, v]) => isGpu(k) && String(v) !== '0');
}

function vllmEnv(server: ModelServerSpec, resources: V1ResourceRequirements): V1EnvVar[] {
  // POD_IP must be a container env var for Kubernetes to expand $(POD_IP) in the topic argument.
  const env: V1EnvVar[] = [
    { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    // Always set: unset, vLLM seeds sha256_cbor block hashes randomly per process (NONE_HASH) and no
    // indexer can reproduce them.
    { name: 'PYTHONHASHSEED', value: server.hashSeed },
    { name: 'HF_HOME', value: MODEL_CACHE_DIR },
  ];
  // Without a GPU request the device plugin does not scope the devices; hide any the node has.
  if (!requestsGpu(resources)) env.push({ name: 'CUDA_VISIBLE_DEVICES', value: '' });
  if (server.hfTokenSecretRef) {
    env.push({ name: 'HF_TOKEN', valueFrom: { secretKeyRef: { name: server.hfTokenSecretRef.name, key: server.hfTokenSecretRef.key } } });
  }
  const reserved = new Set(env.map((e) => e.name));
  for (const e of server.env ?? []) if (!reserved.has(e.name)) env.push(e as V1EnvVar);
  return env;
}

/**
 * Probes on vLLM's /health. Loading weights can take many minutes (a download on a cold cache): the
 * startup probe holds the others off for spec.modelServer.startupTimeoutSeconds. A busy engine answers
 * slowly, so timeouts are seconds, not vLLM-idle milliseconds, and liveness gives a minute of failed
 * checks before a restart, which would throw away the pod's KV cache.
 */
function probes(server: ModelServerSpec): Pick<V1Container, 'startupProbe' | 'readinessProbe' | 'livenessProbe'> {
  const health = (p: Omit<V1Probe, 'httpGet'>): V1Probe => ({ httpGet: { path: '/health', port: 'http' }, ...p });
  const startupPeriod = 10;
  return {
    startupProbe: health({
      periodSeconds: startupPeriod,
      timeoutSeconds: 5,
      failureThreshold: Math.ceil(server.startupTimeoutSeconds / startupPeriod),
    }),
    readinessProbe: health({ periodSeconds: 5, timeoutSeconds: 5, failureThreshold: 3 }),
    livenessProbe: health({ periodSeconds: 10, timeoutSeconds: 10, failureThreshold: 6 }),
  };
}

/** The volumes vLLM writes besides /tmp and $HOME: /dev/shm in memory and the model cache. */
function modelServerVolumes(server: ModelServerSpec): { scratch: ScratchDir[]; volumes: V1Volume[]; mounts: V1Container['volumeMounts'] } {
  const shm: ScratchDir = { volume: 'dshm', mountPath: '/dev/shm', medium: 'Memory', sizeLimit: String(server.shmSize) };
  const cache = server.modelCache;
  if (cache.claimName) {
    return {
      scratch: [TMP_DIR, VLLM_HOME_DIR, shm],
      volumes: [{ name: MODEL_CACHE_VOLUME, persistentVolumeClaim: { claimName: cache.claimName } }],
      mounts: [{ name: MODEL_CACHE_VOLUME, mountPath: MODEL_CACHE_DIR }],
    };
  }
  // An emptyDir is created world-writable, so the arbitrary UID of restricted-v2 can write it.
  const emptyCache: ScratchDir = {
    volume: MODEL_CACHE_VOLUME,
    mountPath: MODEL_CACHE_DIR,
    ...(cache.sizeLimit !== undefined ? { sizeLimit: String(cache.sizeLimit) } : {}),
  };
  return { scratch: [TMP_DIR, VLLM_HOME_DIR, shm, emptyCache], volumes: [], mounts: [] };
}

/** The pool's vLLM Deployment, or undefined without a modelServer; `adapters` come from its accepted InferenceModels. */
export function buildModelServerDeployment(pool: InferencePool, adapters: readonly LoraAdapter[] = []): V1Deployment | undefined {
  const server = pool.spec.modelServer;
  if (!server) return undefined;
  const meta = ownedMeta(pool, names.vllm(pool.metadata.name), 'model-server');
  const selector = podSelector(pool);
  const resources = modelServerResources(server);
  const storage = modelServerVolumes(server);
  const container: V1Container = {
    name: 'vllm',
    image: server.image,
    command: ['vllm', 'serve'],
    args: vllmArgs(pool, server, adapters),
    env: vllmEnv(server, resources),
    ports: [
      { name: 'http', containerPort: server.port, protocol: 'TCP' },
      { name: 'kv-events', containerPort: pool.spec.indexer.eventPort, protocol: 'TCP' },
      ...(pool.spec.indexer.replayPort === null
        ? []
        : [{ name: 'kv-replay', containerPort: pool.spec.indexer.replayPort, protocol: 'TCP' }]),
    ],
    resources,
    ...(storage.mounts?.length ? { volumeMounts: storage.mounts } : {}),
    ...probes(server),
  };
  const fsGroup = server.modelCache.fsGroup;
  const spec: V1PodSpec = {
    containers: [container],
    ...(storage.volumes.length ? { volumes: storage.volumes } : {}),
    // A claim's root directory is owned by whoever provisioned it; fsGroup makes it group-writable for an
    // arbitrary UID. On OpenShift restricted-v2 sets fsGroup itself, so it is only set when asked for.
    ...(fsGroup !== undefined ? { securityContext: { fsGroup, fsGroupChangePolicy: 'OnRootMismatch' } } : {}),
    ...(server.nodeSelector ? { nodeSelector: server.nodeSelector } : {}),
    ...(server.tolerations ? { tolerations: server.tolerations } : {}),
  };
  const serving = pool.spec.servingLabel;
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta,
    spec: {
      replicas: server.replicas,
      selector: { matchLabels: selector },
      // GPUs are the scarce resource: a surge pod would wait for a GPU that the old pod holds. Replace one
      // pod at a time instead.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } },
      template: {
        metadata: { labels: { ...meta.labels, ...selector, [serving.key]: serving.value } },
        // Restricted pod security: vLLM writes /tmp, its caches under $HOME (torch.compile, Triton),
        // /dev/shm and the model cache, all volumes on the read-only root filesystem.
        spec: restrictPodSpec(spec, storage.scratch),
      },
    },
  };
}

export function buildModelServerService(pool: InferencePool): V1Service | undefined {
  const server = pool.spec.modelServer;
  if (!server) return undefined;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: ownedMeta(pool, names.vllm(pool.metadata.name), 'model-server'),
    spec: {
      selector: podSelector(pool),
      ports: [{ name: 'http', port: server.port, targetPort: 'http', protocol: 'TCP' }],
    },
  };
}
