// The NetworkPolicies of an InferencePool: who may reach the router pods (ext_proc from the gateway,
// metrics from the scrapers) and the model-server pods (the serving port from the gateway and the
// router, the KV-event publisher and replay ports from the router only). Each policy selects the pods
// for Ingress, so whatever it does not allow is denied (docs/security.md).

import { z } from 'zod';
import type { InferencePool } from '../../api/inference-pool.ts';
import { names, ownedMeta, type Owned } from '../objects.ts';
import { gatewayNamespace } from './gateway.ts';
import { INDEXER_PORTS, ROUTER_PORTS, routerPodSelector } from './router.ts';
import type { PoolSelection } from './selection.ts';

const LabelSelectorRequirement = z.strictObject({
  key: z.string().min(1).max(317),
  operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
  values: z.array(z.string().max(63)).max(64).optional(),
});
const LabelSelector = z.strictObject({
  matchLabels: z.record(z.string().min(1).max(317), z.string().max(63)).optional(),
  matchExpressions: z.array(LabelSelectorRequirement).max(16).optional(),
});

/** One `from` entry of a NetworkPolicy rule, as Kubernetes spells it (networking.k8s.io/v1 NetworkPolicyPeer). */
export const NetworkPolicyPeer = z
  .strictObject({
    podSelector: LabelSelector.optional(),
    namespaceSelector: LabelSelector.optional(),
    ipBlock: z.strictObject({ cidr: z.string().min(1).max(64), except: z.array(z.string().min(1).max(64)).max(64).optional() }).optional(),
  })
  .refine(
    (p) =>
      p.ipBlock === undefined ? p.podSelector !== undefined || p.namespaceSelector !== undefined : !p.podSelector && !p.namespaceSelector,
    {
      message: 'expected podSelector and/or namespaceSelector, or ipBlock alone',
    },
  );
export const NetworkPolicyPeers = z.array(NetworkPolicyPeer).min(1).max(32);
export type NetworkPolicyPeer = z.infer<typeof NetworkPolicyPeer>;

/**
 * networking.k8s.io/v1 NetworkPolicy as the API server reads it. Not client-node's NetworkPolicy: its
 * TypeScript field for `from` is `_from`, renamed only by its own serializer, which the apply path skips.
 */
export interface NetworkPolicyPort {
  protocol: 'TCP' | 'UDP';
  port?: number;
  endPort?: number;
}
export interface NetworkPolicyIngressRule {
  ports: NetworkPolicyPort[];
  /** Absent: from anywhere. */
  from?: NetworkPolicyPeer[];
}
export type NetworkPolicy = Owned & {
  spec: { podSelector: { matchLabels: Record<string, string> }; policyTypes: ['Ingress']; ingress: NetworkPolicyIngressRule[] };
};

/** The labels the common Gateway API implementations put on the gateway pods they run. */
const GATEWAY_POD_LABELS = [
  // Istio and kgateway (and any implementation following the Gateway API's own label).
  'gateway.networking.k8s.io/gateway-name',
  // Envoy Gateway.
  'gateway.envoyproxy.io/owning-gateway-name',
];

/**
 * Who may call the router's ext_proc port on the GIE path when the operator is told nothing else
 * (--gateway-peers): a gateway pod of a Gateway API implementation, in any namespace.
 */
export const DEFAULT_GATEWAY_PEERS: readonly NetworkPolicyPeer[] = GATEWAY_POD_LABELS.map((key) => ({
  namespaceSelector: {},
  podSelector: { matchExpressions: [{ key, operator: 'Exists' }] },
}));

export interface NetworkPolicyOptions {
  /** false: the pool gets no NetworkPolicies (any it had are pruned). */
  enabled: boolean;
  /** Who may reach ext_proc and the serving ports on the GIE path (the EnvoyFilter path names its gateway itself). */
  gatewayPeers: readonly NetworkPolicyPeer[];
  /** Who may scrape the metrics ports; undefined: anyone (they carry no request data). */
  metricsPeers?: readonly NetworkPolicyPeer[];
}

export const DEFAULT_NETWORK_POLICY: NetworkPolicyOptions = { enabled: true, gatewayPeers: DEFAULT_GATEWAY_PEERS };

/** The NetworkPolicies' names: kinds differ from the Deployments', so names may be shared. */
export const networkPolicyNames = {
  router: (pool: string) => names.router(pool),
  modelServers: (pool: string) => `${pool}-model-servers`,
};

/**
 * The gateway pods that call the pool: on the EnvoyFilter path the workload the filter is applied to, in
 * its namespace; otherwise the configured peers.
 */
function gatewayPeers(pool: InferencePool, options: NetworkPolicyOptions): NetworkPolicyPeer[] {
  const gw = pool.spec.gateway;
  if (gw.envoyFilter && gw.workloadSelector) {
    return [
      {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': gatewayNamespace(pool) } },
        podSelector: { matchLabels: { ...gw.workloadSelector } },
      },
    ];
  }
  return options.gatewayPeers.map((p) => structuredClone(p));
}

const tcp = (port: number): NetworkPolicyPort => ({ protocol: 'TCP', port });
const rule = (ports: NetworkPolicyPort[], from: readonly NetworkPolicyPeer[] | undefined): NetworkPolicyIngressRule =>
  from === undefined ? { ports } : { ports, from: from.map((p) => structuredClone(p)) };

/** The router pods of the pool, as a peer in the pool's namespace. */
const routerPeer = (pool: InferencePool): NetworkPolicyPeer => ({ podSelector: { matchLabels: routerPodSelector(pool) } });

/**
 * TCP port ranges covering 1-65535 except `closed`: what pods the operator does not run keep open to
 * anyone, so a policy that guards their KV-event and serving ports changes nothing else about them.
 */
export function tcpComplement(closed: readonly number[]): NetworkPolicyPort[] {
  const out: NetworkPolicyPort[] = [];
  let from = 1;
  for (const p of [...new Set(closed)].sort((a, b) => a - b)) {
    if (p > from) out.push(p - 1 === from ? tcp(from) : { protocol: 'TCP', port: from, endPort: p - 1 });
    from = p + 1;
  }
  if (from <= 65535) out.push(from === 65535 ? tcp(from) : { protocol: 'TCP', port: from, endPort: 65535 });
  return out;
}

function policy(
  pool: InferencePool,
  name: string,
  component: string,
  podSelector: Record<string, string>,
  ingress: NetworkPolicyIngressRule[],
): NetworkPolicy {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: ownedMeta(pool, name, component),
    spec: { podSelector: { matchLabels: { ...podSelector } }, policyTypes: ['Ingress'], ingress },
  };
}

/**
 * The router pods: ext_proc and its gRPC health port from the gateway, the router's and the indexer's
 * metrics ports from the scrapers. The indexer's scoring HTTP and gRPC ports listen on loopback and are
 * not opened; nothing listens for KV events (the indexer connects to the pods).
 */
export function buildRouterNetworkPolicy(pool: InferencePool, options: NetworkPolicyOptions): NetworkPolicy {
  return policy(pool, networkPolicyNames.router(pool.metadata.name), 'router', routerPodSelector(pool), [
    rule([tcp(ROUTER_PORTS.grpc), tcp(ROUTER_PORTS.health)], gatewayPeers(pool, options)),
    rule([tcp(ROUTER_PORTS.metrics), tcp(INDEXER_PORTS.metrics)], options.metricsPeers),
  ]);
}

/**
 * The model-server pods: the serving ports from the gateway and the router (which scrapes vLLM's
 * metrics there), the KV-event publisher and replay ports from the router pods (their indexer sidecar)
 * only. Pods the operator runs expose nothing else; pods it adopts (spec.selector, spec.poolRef) keep
 * every other TCP port and UDP open to anyone, as before.
 */
export function buildModelServerNetworkPolicy(pool: InferencePool, selection: PoolSelection, options: NetworkPolicyOptions): NetworkPolicy {
  const kvPorts = [pool.spec.indexer.eventPort, ...(pool.spec.indexer.replayPort === null ? [] : [pool.spec.indexer.replayPort])];
  const servingPorts = [...new Set(selection.targetPorts)].sort((a, b) => a - b);
  const ingress = [
    rule(servingPorts.map(tcp), [...gatewayPeers(pool, options), routerPeer(pool)]),
    rule(kvPorts.map(tcp), [routerPeer(pool)]),
  ];
  if (!pool.spec.modelServer) ingress.push(rule([...tcpComplement([...servingPorts, ...kvPorts]), { protocol: 'UDP' }], undefined));
  return policy(pool, networkPolicyNames.modelServers(pool.metadata.name), 'model-server', selection.selector, ingress);
}
