import { describe, it, expect } from '@jest/globals';
import type { V1LabelSelector } from '@kubernetes/client-node';
import { staticServedApis } from '../runtime/optional-apis.ts';
import { testPool } from '../testing.ts';
import { desiredPoolObjects } from './desired.ts';
import { buildModelServerDeployment } from './model-server.ts';
import {
  buildModelServerNetworkPolicy,
  buildRouterNetworkPolicy,
  DEFAULT_NETWORK_POLICY,
  NetworkPolicyPeers,
  tcpComplement,
  type NetworkPolicy,
  type NetworkPolicyOptions,
  type NetworkPolicyPeer,
} from './network-policy.ts';
import { buildRouterDeployment, INDEXER_PORTS, ROUTER_PORTS } from './router.ts';
import { ownSelection } from './selection.ts';

// A small model of Kubernetes' NetworkPolicy semantics (ingress, TCP/UDP, label selectors), so the tests
// state who can reach what rather than how the objects are spelt.
interface Pod {
  namespace: string;
  namespaceLabels?: Record<string, string>;
  labels: Record<string, string>;
}

function selects(sel: V1LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!sel) return true;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = k(labels, e.key);
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
    if (e.operator === 'In' && !(has && e.values!.includes(labels[e.key]!))) return false;
    if (e.operator === 'NotIn' && has && e.values!.includes(labels[e.key]!)) return false;
  }
  return true;
}
const k = (labels: Record<string, string>, key: string) => Object.hasOwn(labels, key);

function peerMatches(peer: NetworkPolicyPeer, from: Pod, policyNamespace: string): boolean {
  if (peer.ipBlock) return false;
  const nsLabels = { 'kubernetes.io/metadata.name': from.namespace, ...from.namespaceLabels };
  const nsOk = peer.namespaceSelector ? selects(peer.namespaceSelector, nsLabels) : from.namespace === policyNamespace;
  return nsOk && selects(peer.podSelector, from.labels);
}

/** Whether `from` may open `protocol`/`port` on `to`, given every policy (no policy selecting `to`: allowed). */
function reachable(policies: NetworkPolicy[], from: Pod, to: Pod, port: number, protocol = 'TCP'): boolean {
  const applying = policies.filter((p) => p.metadata!.namespace === to.namespace && selects(p.spec!.podSelector, to.labels));
  if (applying.length === 0) return true;
  return applying.some((p) =>
    (p.spec!.ingress ?? []).some((r) => {
      const portOk =
        !r.ports ||
        r.ports.some(
          (pp) =>
            (pp.protocol ?? 'TCP') === protocol &&
            (pp.port === undefined || (pp.endPort === undefined ? pp.port === port : port >= Number(pp.port) && port <= pp.endPort)),
        );
      const fromOk = !r.from || r.from.some((peer) => peerMatches(peer, from, p.metadata!.namespace!));
      return portOk && fromOk;
    }),
  );
}

const served = { model: { name: 'm' }, modelServer: { image: 'vllm/vllm-openai:v0.33.0' } };
const pool = testPool(served);

function podsOf(p = pool) {
  const router = buildRouterDeployment(p, { defaultImage: 'kvroute:test' }).spec!.template.metadata!.labels!;
  const vllm = buildModelServerDeployment(p)?.spec!.template.metadata!.labels;
  return {
    router: { namespace: 'ml', labels: router } as Pod,
    vllm: { namespace: 'ml', labels: vllm ?? {} } as Pod,
    istioGateway: {
      namespace: 'istio-ingress',
      labels: { 'gateway.networking.k8s.io/gateway-name': 'inference', istio: 'ingress' },
    } as Pod,
    envoyGateway: { namespace: 'envoy-gateway-system', labels: { 'gateway.envoyproxy.io/owning-gateway-name': 'gw' } } as Pod,
    neighbour: { namespace: 'ml', labels: { app: 'notebook' } } as Pod,
    otherNamespace: { namespace: 'team-b', labels: { app: 'client' } } as Pod,
  };
}

function policies(p = pool, options: NetworkPolicyOptions = DEFAULT_NETWORK_POLICY) {
  return [buildRouterNetworkPolicy(p, options), buildModelServerNetworkPolicy(p, ownSelection(p)!, options)];
}

describe('pool NetworkPolicies', () => {
  const pods = podsOf();
  const all = policies();

  it('lets only gateway pods reach the router ext_proc port, not a neighbour in the pool namespace nor another namespace', () => {
    expect(reachable(all, pods.istioGateway, pods.router, ROUTER_PORTS.grpc)).toBe(true);
    expect(reachable(all, pods.envoyGateway, pods.router, ROUTER_PORTS.grpc)).toBe(true);
    expect(reachable(all, pods.neighbour, pods.router, ROUTER_PORTS.grpc)).toBe(false);
    expect(reachable(all, pods.otherNamespace, pods.router, ROUTER_PORTS.grpc)).toBe(false);
    expect(reachable(all, pods.vllm, pods.router, ROUTER_PORTS.grpc)).toBe(false);
  });

  it("never opens the indexer sidecar's scoring ports, and opens the metrics ports to scrapers (anyone by default)", () => {
    for (const from of Object.values(pods)) {
      expect(reachable(all, from, pods.router, INDEXER_PORTS.http)).toBe(false);
      expect(reachable(all, from, pods.router, INDEXER_PORTS.grpc)).toBe(false);
      expect(reachable(all, from, pods.router, 5557)).toBe(false);
    }
    expect(reachable(all, pods.otherNamespace, pods.router, ROUTER_PORTS.metrics)).toBe(true);
    expect(reachable(all, pods.otherNamespace, pods.router, INDEXER_PORTS.metrics)).toBe(true);
    const monitoring = { namespace: 'monitoring', labels: { app: 'prometheus' } };
    const scoped = policies(pool, {
      ...DEFAULT_NETWORK_POLICY,
      metricsPeers: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }],
    });
    expect(reachable(scoped, monitoring, pods.router, INDEXER_PORTS.metrics)).toBe(true);
    expect(reachable(scoped, pods.otherNamespace, pods.router, INDEXER_PORTS.metrics)).toBe(false);
  });

  it("lets only the pool's router pods reach each vLLM pod's KV-event publisher and replay ports", () => {
    for (const port of [5557, 5558]) {
      expect(reachable(all, pods.router, pods.vllm, port)).toBe(true);
      for (const from of [pods.istioGateway, pods.neighbour, pods.otherNamespace, pods.vllm])
        expect(reachable(all, from, pods.vllm, port)).toBe(false);
    }
    // Another pool's router in the same namespace is not this pool's router.
    const otherRouter = podsOf(testPool(served, { name: 'other' })).router;
    expect(reachable(all, otherRouter, pods.vllm, 5557)).toBe(false);
  });

  it('lets the gateway and the router (metrics scrape) reach the serving port, and denies every other port of operator-run pods', () => {
    expect(reachable(all, pods.istioGateway, pods.vllm, 8000)).toBe(true);
    expect(reachable(all, pods.router, pods.vllm, 8000)).toBe(true);
    expect(reachable(all, pods.neighbour, pods.vllm, 8000)).toBe(false);
    expect(reachable(all, pods.router, pods.vllm, 22)).toBe(false);
    expect(reachable(all, pods.neighbour, pods.vllm, 53, 'UDP')).toBe(false);
  });

  it('follows custom event and replay ports, and a pool without replay', () => {
    const custom = testPool({ ...served, indexer: { eventPort: 6000, replayPort: null } });
    const ps = policies(custom);
    const p = podsOf(custom);
    expect(reachable(ps, p.router, p.vllm, 6000)).toBe(true);
    expect(reachable(ps, p.neighbour, p.vllm, 6000)).toBe(false);
    expect(reachable(ps, p.router, p.vllm, 5558)).toBe(false);
  });

  it('on the EnvoyFilter path admits exactly the gateway workload the filter applies to, in its namespace', () => {
    const ef = testPool({
      ...served,
      gateway: { envoyFilter: true, namespace: 'istio-system', workloadSelector: { istio: 'ingressgateway' }, routeNames: ['r'] },
    });
    const ps = policies(ef);
    const p = podsOf(ef);
    const gw = { namespace: 'istio-system', labels: { istio: 'ingressgateway' } };
    expect(reachable(ps, gw, p.router, ROUTER_PORTS.grpc)).toBe(true);
    expect(reachable(ps, gw, p.vllm, 8000)).toBe(true);
    expect(reachable(ps, { namespace: 'ml', labels: { istio: 'ingressgateway' } }, p.router, ROUTER_PORTS.grpc)).toBe(false);
    expect(reachable(ps, p.istioGateway, p.router, ROUTER_PORTS.grpc)).toBe(false);
  });

  it('takes configured gateway peers on the GIE path', () => {
    const ps = policies(pool, {
      enabled: true,
      gatewayPeers: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'gw' } } }],
    });
    expect(reachable(ps, { namespace: 'gw', labels: {} }, pods.router, ROUTER_PORTS.grpc)).toBe(true);
    expect(reachable(ps, pods.istioGateway, pods.router, ROUTER_PORTS.grpc)).toBe(false);
  });

  it('guards only the serving and KV ports of adopted pods, leaving their other TCP ports and UDP as they were', () => {
    const adopted = testPool({
      model: { name: 'm' },
      selector: { matchLabels: { app: 'vllm' } },
      targetPorts: [{ number: 8000 }, { number: 8001 }],
    });
    const ps = policies(adopted);
    const p = podsOf(adopted);
    const vllm = { namespace: 'ml', labels: { app: 'vllm', 'llm-d.ai/inferenceServing': 'true' } };
    for (const port of [8000, 8001]) {
      expect(reachable(ps, p.istioGateway, vllm, port)).toBe(true);
      expect(reachable(ps, p.neighbour, vllm, port)).toBe(false);
    }
    expect(reachable(ps, p.router, vllm, 5557)).toBe(true);
    expect(reachable(ps, p.neighbour, vllm, 5557)).toBe(false);
    expect(reachable(ps, p.neighbour, vllm, 5558)).toBe(false);
    for (const port of [1, 22, 5556, 5559, 7999, 8002, 65535]) expect(reachable(ps, p.neighbour, vllm, port)).toBe(true);
    expect(reachable(ps, p.neighbour, vllm, 53, 'UDP')).toBe(true);
  });

  it('computes the TCP complement of a port set', () => {
    expect(tcpComplement([1, 65535])).toEqual([{ protocol: 'TCP', port: 2, endPort: 65534 }]);
    expect(tcpComplement([3, 5, 5])).toEqual([
      { protocol: 'TCP', port: 1, endPort: 2 },
      { protocol: 'TCP', port: 4 },
      { protocol: 'TCP', port: 6, endPort: 65535 },
    ]);
  });

  it('is rendered for every pool by default, and pruned when turned off', () => {
    const opts = { defaultImage: 'kvroute:test', clusterDomain: 'cluster.local', apis: staticServedApis([]) };
    const on = desiredPoolObjects(pool, [], opts);
    expect(on.apply.filter((o) => o.kind === 'NetworkPolicy').map((o) => o.metadata.name)).toEqual(['llama-router', 'llama-model-servers']);
    const off = desiredPoolObjects(pool, [], { ...opts, networkPolicy: { ...DEFAULT_NETWORK_POLICY, enabled: false } });
    expect(off.apply.some((o) => o.kind === 'NetworkPolicy')).toBe(false);
    expect(off.prune.filter((r) => r.kind === 'NetworkPolicy').map((r) => r.name)).toEqual(['llama-router', 'llama-model-servers']);
  });

  it('rejects a malformed peer, naming what was expected', () => {
    expect(NetworkPolicyPeers.safeParse([{ podSelector: {} }]).success).toBe(true);
    expect(NetworkPolicyPeers.safeParse([{}]).error?.issues[0]?.message).toBe(
      'expected podSelector and/or namespaceSelector, or ipBlock alone',
    );
    expect(NetworkPolicyPeers.safeParse([{ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }]).success).toBe(false);
    expect(NetworkPolicyPeers.safeParse([{ podSelector: { matchExpressions: [{ key: 'a', operator: 'Has' }] } }]).success).toBe(false);
  });
});
