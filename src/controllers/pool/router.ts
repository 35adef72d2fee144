// Desired router objects of an InferencePool: the ConfigMap rendered from the pool and its accepted
// InferenceModels, the router Deployment (router container + indexer sidecar), its Service, and the
// ServiceAccount, Role and RoleBinding that let it read pods and nothing more (the router's endpoint
// view and the indexer's pod discovery both list and watch them).

import type { V1ConfigMap, V1Container, V1Deployment, V1Role, V1RoleBinding, V1Service, V1ServiceAccount } from '@kubernetes/client-node';
import YAML from 'yaml';
import type { InferenceModel } from '../../api/inference-model.ts';
import type { InferencePool } from '../../api/inference-pool.ts';
import type { IndexerConfigInput } from '../../api/indexer-config.ts';
import type { RouterConfig } from '../../api/router-config.ts';
import { names, ownedMeta, podSelector, servedModelName } from '../objects.ts';

export const ROUTER_PORTS = { grpc: 9002, health: 9003, metrics: 9090 } as const;
export const INDEXER_PORTS = { http: 8081, grpc: 9004 } as const;
export const CONFIG_DIR = '/etc/kvroute';

export interface RouterOptions {
  /** kvroute image used when the pool does not name one. */
  defaultImage: string;
}

/** vLLM's default block size when the operator does not run the servers and the pool does not say. */
const DEFAULT_BLOCK_SIZE = 16;

export function renderRouterConfig(pool: InferencePool, models: InferenceModel[]): RouterConfig {
  const r = pool.spec.router;
  return {
    pool: {
      name: pool.metadata.name,
      namespace: pool.metadata.namespace ?? 'default',
      selector: podSelector(pool),
      targetPort: pool.spec.targetPort,
    },
    servedModelName: servedModelName(pool),
    failureMode: r.failureMode,
    loadBound: r.loadBound,
    sessionAffinity: { ...r.sessionAffinity },
    scorerWeights: { ...r.schedulingProfile.scorerWeights },
    indexer: { grpcAddress: `127.0.0.1:${INDEXER_PORTS.grpc}` },
    models: [...models]
      .sort((a, b) => a.spec.modelName.localeCompare(b.spec.modelName))
      .map((m) => ({
        modelName: m.spec.modelName,
        criticality: m.spec.criticality,
        targetModels: (m.spec.targetModels?.length ? m.spec.targetModels : [{ name: servedModelName(pool) }]).map((t) => ({
          name: t.name,
          weight: t.weight ?? 1,
        })),
      })),
  };
}

/**
 * indexer.yaml: discovery mode (the sidecar lists the pool's pods and connects to each one's
 * publisher, so every router replica sees every pod), hashing as the pool runs. The publisher and
 * replay ports come from spec.indexer, so adopted pods may publish elsewhere than vLLM's defaults.
 */
export function renderIndexerConfig(pool: InferencePool): IndexerConfigInput {
  const server = pool.spec.modelServer;
  return {
    zmq: {
      discovery: {
        namespace: pool.metadata.namespace ?? 'default',
        selector: { ...podSelector(pool) },
        port: pool.spec.indexer.eventPort,
        replayPort: pool.spec.indexer.replayPort,
      },
    },
    http: { port: INDEXER_PORTS.http },
    grpc: { port: INDEXER_PORTS.grpc },
    blockSize: server?.blockSize ?? DEFAULT_BLOCK_SIZE,
    hashSeed: server?.hashSeed ?? null,
    // Only when the operator runs vLLM does it know the hash algorithm and seed for certain.
    engineKeyParity: server !== undefined,
    index: { maxKeys: pool.spec.indexer.maxBlocks, maxPodsPerKey: pool.spec.indexer.maxPodsPerBlock },
    tierWeights: { ...pool.spec.indexer.tierWeights },
    ...(pool.spec.model.tokenizer ? { tokenizers: { [servedModelName(pool)]: pool.spec.model.tokenizer } } : {}),
  };
}

export function buildRouterConfigMap(pool: InferencePool, acceptedModels: InferenceModel[]): V1ConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: ownedMeta(pool, names.router(pool.metadata.name), 'router'),
    data: {
      'router.yaml': YAML.stringify(renderRouterConfig(pool, acceptedModels)),
      'indexer.yaml': YAML.stringify(renderIndexerConfig(pool)),
    },
  };
}

function httpProbe(port: number, path: string) {
  return { httpGet: { path, port }, periodSeconds: 5, failureThreshold: 3 };
}

export function buildRouterDeployment(pool: InferencePool, options: RouterOptions): V1Deployment {
  const meta = ownedMeta(pool, names.router(pool.metadata.name), 'router');
  const image = pool.spec.router.image ?? options.defaultImage;
  const selector = { 'app.kubernetes.io/instance': pool.metadata.name, 'app.kubernetes.io/component': 'router' };
  const configMount = [{ name: 'config', mountPath: CONFIG_DIR, readOnly: true }];
  const router: V1Container = {
    name: 'router',
    image,
    args: [
      'router',
      `--config=${CONFIG_DIR}/router.yaml`,
      `--grpc-port=${ROUTER_PORTS.grpc}`,
      `--health-port=${ROUTER_PORTS.health}`,
      `--metrics-port=${ROUTER_PORTS.metrics}`,
    ],
    env: [{ name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } }],
    ports: [
      { name: 'grpc', containerPort: ROUTER_PORTS.grpc, protocol: 'TCP' },
      { name: 'health', containerPort: ROUTER_PORTS.health, protocol: 'TCP' },
      { name: 'metrics', containerPort: ROUTER_PORTS.metrics, protocol: 'TCP' },
    ],
    readinessProbe: httpProbe(ROUTER_PORTS.health, '/readyz'),
    livenessProbe: httpProbe(ROUTER_PORTS.health, '/healthz'),
    volumeMounts: configMount,
  };
  const indexer: V1Container = {
    name: 'indexer',
    image,
    args: ['indexer', '--config', `${CONFIG_DIR}/indexer.yaml`],
    // The namespace is in indexer.yaml too; POD_NAMESPACE is the indexer's fallback when it is not.
    env: [{ name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } }],
    ports: [
      { name: 'indexer-http', containerPort: INDEXER_PORTS.http, protocol: 'TCP' },
      { name: 'indexer-grpc', containerPort: INDEXER_PORTS.grpc, protocol: 'TCP' },
    ],
    readinessProbe: httpProbe(INDEXER_PORTS.http, '/readyz'),
    livenessProbe: httpProbe(INDEXER_PORTS.http, '/healthz'),
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
        spec: {
          serviceAccountName: names.router(pool.metadata.name),
          containers: [router, indexer],
          volumes: [{ name: 'config', configMap: { name: names.router(pool.metadata.name) } }],
        },
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
      selector: { 'app.kubernetes.io/instance': pool.metadata.name, 'app.kubernetes.io/component': 'router' },
      ports: [
        { name: 'grpc-ext-proc', port: ROUTER_PORTS.grpc, targetPort: 'grpc', protocol: 'TCP', appProtocol: 'http2' },
        { name: 'http-health', port: ROUTER_PORTS.health, targetPort: 'health', protocol: 'TCP' },
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
      rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }],
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
