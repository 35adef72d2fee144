// Desired router objects of an InferencePool: the ConfigMap (router.yaml, an EndpointPickerConfig
// rendered from the pool and its accepted InferenceModels, and indexer.yaml), the router Deployment
// (router container + indexer sidecar), its Service, and the ServiceAccount, Role and RoleBinding that
// let it read its pool and the pods (the router's endpoint view and the indexer's pod discovery).

import type {
  V1ConfigMap,
  V1Container,
  V1Deployment,
  V1Probe,
  V1Role,
  V1RoleBinding,
  V1Service,
  V1ServiceAccount,
} from '@kubernetes/client-node';
import YAML from 'yaml';
import type { z } from 'zod';
import {
  ENDPOINT_PICKER_API_VERSION,
  type EndpointPickerConfigInput,
  type PluginSpec,
  type ProfilePluginRef,
  WARM_MATCH_FRACTION,
} from '../../api/endpoint-picker-config.ts';
import { modelPriority, type InferenceModel } from '../../api/inference-model.ts';
import type { InferencePool } from '../../api/inference-pool.ts';
import type { IndexerConfigInput } from '../../api/indexer-config.ts';
import { API_GROUP } from '../../api/meta.ts';
import { names, ownedMeta, servedModelName } from '../objects.ts';
import type { LoraAdapter } from './lora.ts';
import { restrictPodSpec, TMP_DIR } from './security.ts';
import { ownSelection, type PoolSelection } from './selection.ts';

export const ROUTER_PORTS = { grpc: 9002, health: 9003, metrics: 9090 } as const;
/**
 * The indexer sidecar's ports: scoring over HTTP and gRPC on loopback only (the router reaches it there),
 * and /metrics, /healthz, /readyz on a port of their own that kubelet and Prometheus can reach.
 */
export const INDEXER_PORTS = { http: 8081, grpc: 9004, metrics: 9091 } as const;
/** Where the sidecar's scoring API listens: the router is its only client, in the same pod. */
const LOOPBACK = '127.0.0.1';
export const CONFIG_DIR = '/etc/kvroute';

export interface RouterOptions {
  /** kvroute image used when the pool does not name one. */
  defaultImage: string;
}

/** vLLM's default block size when the operator does not run the servers and the pool does not say. */
const DEFAULT_BLOCK_SIZE = 16;

type PluginInput = z.input<typeof PluginSpec>;
type ProfileRefInput = z.input<typeof ProfilePluginRef>;

/** The one indexer call per request that both prefix consumers read. */
const PRECISE_PRODUCER = 'precise-prefix-cache-producer';

/**
 * router.yaml: the pool's spec.router as one scheduling profile. The load bound filters first; the
 * scorers carry the pool's weights (a scorer weighted 0 is left out, so the indexer is not asked for
 * nothing); the max-score picker picks. Session affinity, when enabled, outweighs every other scorer
 * together, so a session stays on its pod while the load bound lets it. failureMode is the gateway's
 * setting (the EnvoyFilter's failure_mode_allow), not the router's.
 */
function renderEndpointPickerConfig(pool: InferencePool, models: InferenceModel[]): EndpointPickerConfigInput {
  const r = pool.spec.router;
  const weights = r.schedulingProfile.scorerWeights;
  const plugins: PluginInput[] = [{ type: 'load-bound-filter', parameters: { loadBound: r.loadBound } }];
  const refs: ProfileRefInput[] = [{ pluginRef: 'load-bound-filter' }];
  const scorer = (type: string, weight: number, parameters?: Record<string, unknown>) => {
    if (weight <= 0) return;
    plugins.push(parameters ? { type, parameters } : { type });
    refs.push({ pluginRef: type, weight });
  };
  // One indexer call per request, read by both prefix consumers (the router's default profile). The
  // no-hit-lru scorer spreads new prefixes for the prefix scorer, so prefixCache 0 (no prefix routing)
  // leaves out all three and the indexer is not asked.
  if (weights.prefixCache > 0) {
    plugins.push({ type: PRECISE_PRODUCER, parameters: { indexerAddress: `127.0.0.1:${INDEXER_PORTS.grpc}` } });
    scorer('prefix-cache-scorer', weights.prefixCache, { prefixMatchInfoProducerName: PRECISE_PRODUCER });
    scorer('no-hit-lru-scorer', weights.noHitLru, {
      prefixMatchInfoProducerName: PRECISE_PRODUCER,
      warmMatchFraction: WARM_MATCH_FRACTION,
    });
  }
  scorer('queue-scorer', weights.queueDepth);
  scorer('kv-cache-utilization-scorer', weights.kvCacheUtilization);
  scorer('running-requests-scorer', weights.runningRequests);
  // llm-d's token strategy: the router sets x-session-token on each response and the client echoes it.
  // The scorer takes no header parameter, so spec.router.sessionAffinity.header does not reach it.
  if (r.sessionAffinity.enabled) scorer('session-affinity-scorer', refs.reduce((sum, ref) => sum + (ref.weight ?? 0), 0) + 1);
  plugins.push({ type: 'max-score-picker' });
  refs.push({ pluginRef: 'max-score-picker' });
  return {
    apiVersion: ENDPOINT_PICKER_API_VERSION,
    kind: 'EndpointPickerConfig',
    plugins,
    schedulingProfiles: [{ name: 'default', plugins: refs }],
    models: [...models]
      .sort((a, b) => a.spec.modelName.localeCompare(b.spec.modelName))
      .map((m) => {
        // An InferenceModel without targets serves the pool's base model under its own name (or, when
        // the pool names no model, passes its name through).
        const base = servedModelName(pool);
        const targets = m.spec.targetModels?.length ? m.spec.targetModels : base !== undefined ? [{ name: base }] : [];
        return {
          modelName: m.spec.modelName,
          // GIE's priority; the deprecated criticality only ever reaches the router through it.
          priority: modelPriority(m.spec),
          targetModels: targets.map((t) => ({ name: t.name, weight: t.weight ?? 1 })),
        };
      }),
  };
}

/**
 * indexer.yaml: discovery mode (the sidecar lists the pool's pods and connects to each one's
 * publisher, so every router replica sees every pod), hashing as the pool runs. The publisher and
 * replay ports come from spec.indexer, so adopted pods may publish elsewhere than vLLM's defaults.
 * `selection` is the pool's (or its poolRef's) selector; `adapters` the LoRA adapters vLLM was given,
 * whose paths vLLM hashes into adapter blocks.
 */
export function renderIndexerConfig(
  pool: InferencePool,
  selection: PoolSelection,
  adapters: readonly LoraAdapter[] = [],
): IndexerConfigInput {
  const server = pool.spec.modelServer;
  const model = servedModelName(pool);
  return {
    zmq: {
      discovery: {
        namespace: pool.metadata.namespace ?? 'default',
        selector: { ...selection.selector },
        servingLabel: { ...pool.spec.servingLabel },
        port: pool.spec.indexer.eventPort,
        replayPort: pool.spec.indexer.replayPort,
      },
    },
    http: { host: LOOPBACK, port: INDEXER_PORTS.http },
    grpc: { host: LOOPBACK, port: INDEXER_PORTS.grpc },
    metrics: { port: INDEXER_PORTS.metrics },
    blockSize: server?.blockSize ?? DEFAULT_BLOCK_SIZE,
    hashSeed: server?.hashSeed ?? null,
    // Only when the operator runs vLLM does it know the hash algorithm and seed for certain.
    engineKeyParity: server !== undefined,
    index: { maxKeys: pool.spec.indexer.maxBlocks, maxPodsPerKey: pool.spec.indexer.maxPodsPerBlock },
    tierWeights: { ...pool.spec.indexer.tierWeights },
    ...(adapters.length > 0 ? { loras: Object.fromEntries(adapters.map((a) => [a.name, a.source])) } : {}),
    ...(model !== undefined && pool.spec.model?.tokenizer ? { tokenizers: { [model]: pool.spec.model.tokenizer } } : {}),
  };
}

/** The router's ConfigMap; `selection` defaults to the pool's own and is required for a pool with spec.poolRef. */
export function buildRouterConfigMap(
  pool: InferencePool,
  acceptedModels: InferenceModel[],
  selection: PoolSelection | undefined = ownSelection(pool),
  adapters: readonly LoraAdapter[] = [],
): V1ConfigMap {
  if (!selection)
    throw new Error(`InferencePool ${pool.metadata.name}: spec.poolRef must be resolved to the referenced InferencePool's selection first`);
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: ownedMeta(pool, names.router(pool.metadata.name), 'router'),
    data: {
      'router.yaml': YAML.stringify(renderEndpointPickerConfig(pool, acceptedModels)),
      'indexer.yaml': YAML.stringify(renderIndexerConfig(pool, selection, adapters)),
    },
  };
}

function httpProbe(port: number, path: string): V1Probe {
  return { httpGet: { path, port }, periodSeconds: 5, failureThreshold: 3 };
}

/** grpc.health.v1 on the router's health port: `readiness` turns SERVING once its endpoints are known. */
function grpcProbe(service: 'readiness' | 'liveness'): V1Probe {
  return { grpc: { port: ROUTER_PORTS.health, service }, periodSeconds: 5, failureThreshold: 3 };
}

/**
 * The InferencePool the router follows for its selector and ports: the kvroute pool itself, or the GIE
 * InferencePool it refers to (spec.poolRef), which the router reads directly.
 */
function followedPool(pool: InferencePool): { group: string; name: string } {
  return pool.spec.poolRef
    ? { group: pool.spec.poolRef.group, name: pool.spec.poolRef.name }
    : { group: API_GROUP, name: pool.metadata.name };
}

/** The router's command line (GIE's flag names); the pool's selector and port are read from the pool itself. */
function routerArgs(pool: InferencePool): string[] {
  const followed = followedPool(pool);
  const model = servedModelName(pool);
  return [
    'router',
    `--grpc-port=${ROUTER_PORTS.grpc}`,
    `--grpc-health-port=${ROUTER_PORTS.health}`,
    `--metrics-port=${ROUTER_PORTS.metrics}`,
    `--config-file=${CONFIG_DIR}/router.yaml`,
    `--pool-name=${followed.name}`,
    `--pool-namespace=${pool.metadata.namespace ?? 'default'}`,
    `--pool-group=${followed.group}`,
    `--serving-label=${pool.spec.servingLabel.key}=${pool.spec.servingLabel.value}`,
    ...(model !== undefined ? [`--model=${model}`] : []),
  ];
}

/** The labels that select the pool's router pods (its Deployment, Service and NetworkPolicies). */
export function routerPodSelector(pool: InferencePool): Record<string, string> {
  return { 'app.kubernetes.io/instance': pool.metadata.name, 'app.kubernetes.io/component': 'router' };
}

export function buildRouterDeployment(pool: InferencePool, options: RouterOptions): V1Deployment {
  const meta = ownedMeta(pool, names.router(pool.metadata.name), 'router');
  const image = pool.spec.router.image ?? options.defaultImage;
  const selector = routerPodSelector(pool);
  const configMount = [{ name: 'config', mountPath: CONFIG_DIR, readOnly: true }];
  const router: V1Container = {
    name: 'router',
    image,
    args: routerArgs(pool),
    env: [{ name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } }],
    ports: [
      { name: 'grpc', containerPort: ROUTER_PORTS.grpc, protocol: 'TCP' },
      { name: 'health', containerPort: ROUTER_PORTS.health, protocol: 'TCP' },
      { name: 'metrics', containerPort: ROUTER_PORTS.metrics, protocol: 'TCP' },
    ],
    readinessProbe: grpcProbe('readiness'),
    livenessProbe: grpcProbe('liveness'),
    volumeMounts: configMount,
  };
  const indexer: V1Container = {
    name: 'indexer',
    image,
    args: ['indexer', '--config', `${CONFIG_DIR}/indexer.yaml`],
    // The namespace is in indexer.yaml too; POD_NAMESPACE is the indexer's fallback when it is not.
    env: [{ name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } }],
    // Scoring (HTTP, gRPC) listens on loopback (indexer.yaml); only the metrics and probe port is declared.
    ports: [{ name: 'indexer-metrics', containerPort: INDEXER_PORTS.metrics, protocol: 'TCP' }],
    readinessProbe: httpProbe(INDEXER_PORTS.metrics, '/readyz'),
    livenessProbe: httpProbe(INDEXER_PORTS.metrics, '/healthz'),
    volumeMounts: configMount,
  };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta,
    spec: {
      replicas: pool.spec.router.replicas,
      selector: { matchLabels: selector },
      template: {
        metadata: { labels: { ...meta.labels, ...selector } },
        // Restricted pod security; both containers get a writable /tmp on the read-only root filesystem.
        spec: restrictPodSpec(
          {
            serviceAccountName: names.router(pool.metadata.name),
            containers: [router, indexer],
            volumes: [{ name: 'config', configMap: { name: names.router(pool.metadata.name) } }],
          },
          [TMP_DIR],
        ),
      },
    },
  };
}

export function buildRouterService(pool: InferencePool): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: ownedMeta(pool, names.router(pool.metadata.name), 'router'),
    spec: {
      selector: routerPodSelector(pool),
      ports: [
        { name: 'grpc-ext-proc', port: ROUTER_PORTS.grpc, targetPort: 'grpc', protocol: 'TCP', appProtocol: 'http2' },
        { name: 'grpc-health', port: ROUTER_PORTS.health, targetPort: 'health', protocol: 'TCP', appProtocol: 'http2' },
        { name: 'http-metrics', port: ROUTER_PORTS.metrics, targetPort: 'metrics', protocol: 'TCP' },
      ],
    },
  };
}

export function buildRouterRbac(pool: InferencePool): [V1ServiceAccount, V1Role, V1RoleBinding] {
  const name = names.router(pool.metadata.name);
  const ns = pool.metadata.namespace ?? 'default';
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: ownedMeta(pool, name, 'router') },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: ownedMeta(pool, name, 'router'),
      rules: [
        { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
        // The router follows its pool's (or its poolRef's) selector and target ports (--pool-name); the
        // operator may grant this because it holds the same verbs on both groups (config/rbac/role.yaml).
        { apiGroups: [followedPool(pool).group], resources: ['inferencepools'], verbs: ['get', 'list', 'watch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: ownedMeta(pool, name, 'router'),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ kind: 'ServiceAccount', name, namespace: ns }],
    },
  ];
}
