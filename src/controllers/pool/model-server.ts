// Desired vLLM Deployment and Service of an InferencePool that has a modelServer: the arguments that
// make vLLM's prefix cache and KV events match what the indexer expects, byte for byte.

import { INFERENCE_SERVING_LABEL } from '../../api/meta.ts';
import type { V1Container, V1Deployment, V1EnvVar, V1Service } from '@kubernetes/client-node';
import type { InferencePool, ModelServerSpec } from '../../api/inference-pool.ts';
import { names, ownedMeta, podSelector, servedModelName } from '../objects.ts';

export const PREFIX_CACHING_HASH_ALGO = 'sha256_cbor';

export interface ModelServerOptions {
  clusterDomain?: string;
}

/**
 * vLLM's --kv-events-config: each pod binds its publisher and replay endpoint ("*" makes vLLM bind),
 * and every router replica's indexer discovers the pods and connects to each (ADR 0007).
 */
export function kvEventsConfig(pool: InferencePool): string {
  return JSON.stringify({
    enable_kv_cache_events: true,
    publisher: 'zmq',
    endpoint: `tcp://*:${pool.spec.indexer.eventPort}`,
    ...(pool.spec.indexer.replayPort === null ? {} : { replay_endpoint: `tcp://*:${pool.spec.indexer.replayPort}` }),
    topic: `kv@$(POD_IP)@${servedModelName(pool)}`,
  });
}

export function vllmArgs(pool: InferencePool, server: ModelServerSpec): string[] {
  const args = [
    pool.spec.model.name,
    `--port=${server.port}`,
    `--served-model-name=${servedModelName(pool)}`,
    '--enable-prefix-caching',
    `--block-size=${server.blockSize}`,
    `--gpu-memory-utilization=${server.gpuMemoryUtilization}`,
  ];
  if (server.maxModelLen !== undefined) args.push(`--max-model-len=${server.maxModelLen}`);
  args.push(
    `--kv-cache-dtype=${server.kvCacheDtype}`,
    '--prefix-caching-hash-algo',
    PREFIX_CACHING_HASH_ALGO,
    `--kv-events-config=${kvEventsConfig(pool)}`,
  );
  return [...args, ...(server.extraArgs ?? [])];
}

function requestsGpu(server: ModelServerSpec): boolean {
  const q = server.resources?.limits?.['nvidia.com/gpu'] ?? server.resources?.requests?.['nvidia.com/gpu'];
  return q !== undefined && String(q) !== '0';
}

export function vllmEnv(server: ModelServerSpec): V1EnvVar[] {
  // POD_IP must be a container env var for Kubernetes to expand $(POD_IP) in the topic argument.
  const env: V1EnvVar[] = [{ name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }];
  if (server.hashSeed !== undefined) env.push({ name: 'PYTHONHASHSEED', value: server.hashSeed });
  // Without a GPU request the device plugin does not scope the devices; hide any the node has.
  if (!requestsGpu(server)) env.push({ name: 'CUDA_VISIBLE_DEVICES', value: '' });
  if (server.hfTokenSecretRef) {
    env.push({ name: 'HF_TOKEN', valueFrom: { secretKeyRef: { name: server.hfTokenSecretRef.name, key: server.hfTokenSecretRef.key } } });
  }
  const reserved = new Set(env.map((e) => e.name));
  for (const e of server.env ?? []) if (!reserved.has(e.name)) env.push(e as V1EnvVar);
  return env;
}

export function buildModelServerDeployment(pool: InferencePool): V1Deployment | undefined {
  const server = pool.spec.modelServer;
  if (!server) return undefined;
  const meta = ownedMeta(pool, names.vllm(pool.metadata.name), 'model-server');
  const selector = podSelector(pool);
  const probe = (periodSeconds: number, failureThreshold: number) => ({
    httpGet: { path: '/health', port: 'http' },
    periodSeconds,
    failureThreshold,
  });
  const container: V1Container = {
    name: 'vllm',
    image: server.image,
    command: ['vllm', 'serve'],
    args: vllmArgs(pool, server),
    env: vllmEnv(server),
    ports: [
      { name: 'http', containerPort: server.port, protocol: 'TCP' },
      { name: 'kv-events', containerPort: pool.spec.indexer.eventPort, protocol: 'TCP' },
      ...(pool.spec.indexer.replayPort === null ? [] : [{ name: 'kv-replay', containerPort: pool.spec.indexer.replayPort, protocol: 'TCP' }]),
    ],
    // Loading weights takes minutes: the startup probe holds liveness off for up to 20 minutes.
    startupProbe: probe(10, 120),
    readinessProbe: probe(5, 3),
    livenessProbe: probe(10, 3),
  };
  if (server.resources) container.resources = server.resources as V1Container['resources'];
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta,
    spec: {
      replicas: server.replicas,
      selector: { matchLabels: selector },
      template: {
        metadata: { labels: { ...meta.labels, ...selector, [INFERENCE_SERVING_LABEL]: 'true' } },
        spec: {
          containers: [container],
          ...(server.nodeSelector ? { nodeSelector: server.nodeSelector } : {}),
          ...(server.tolerations ? { tolerations: server.tolerations } : {}),
        },
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
