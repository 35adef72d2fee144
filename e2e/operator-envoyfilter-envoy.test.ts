// The EnvoyFilter the operator renders, checked by a real Envoy instead of by reading it. Its patches
// are applied to an Istio-shaped gateway (test/support/istio-gateway.ts: Istio's cluster naming, the
// pool's DestinationRule turned into TLS to the router) and the result must pass `envoy --mode
// validate`; broken patches must fail it. Then Envoy runs that config in front of the real `kvroute
// router`, started with the command line the operator renders (plus --endpoints, as there is no
// cluster network), and two simulated vLLM pods: a request on the pool's route lands on the pod the
// router picked, another app's route on the same gateway never reaches the router, and with the
// router gone the pool's route fails closed while the other app keeps working.

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import YAML from 'yaml';
import type { InferencePool } from '../src/api/inference-pool.ts';
import { buildEnvoyFilter, type EnvoyFilter } from '../src/controllers/pool/envoy-filter.ts';
import { buildRouterDestinationRule, routerHost } from '../src/controllers/pool/gateway.ts';
import { buildRouterConfigMap, buildRouterDeployment, CONFIG_DIR, ROUTER_PORTS } from '../src/controllers/pool/router.ts';
import { testPool } from '../src/controllers/testing.ts';
import {
  applyEnvoyFilterPatches,
  destinationRuleTransportSocket,
  gatewayBootstrap,
  istioClusterName,
  type GatewayCluster,
  type Json,
} from '../test/support/istio-gateway.ts';
import { spawnKvroute, portOf, type KvrouteProcess } from '../test/support/kvroute.ts';
import { freePort } from '../test/support/ports.ts';
import { silentLogger } from '../src/common/log.ts';
import { startEnvoy, type RunningEnvoy } from '../src/gateway/envoy-process.ts';
import { envoyAvailable, envoyBinary, envoyRequired } from './support/envoy.ts';
import { metricValue } from './support/prometheus-text.ts';

const run = promisify(execFile);
const enabled = envoyAvailable() || envoyRequired();
const describeEnvoy = enabled ? describe : describe.skip;
if (!enabled)
  console.warn(
    'e2e/operator-envoyfilter-envoy.test.ts skipped: no Envoy; run bash hack/envoy/install.sh, or set KVROUTE_REQUIRE_ENVOY=1 to fail instead',
  );

const OPTIONS = { clusterDomain: 'cluster.local' };
const SERVED = 'llama-8b';
const POOL_ROUTE = 'llama-completions';

/** A pool on the EnvoyFilter path as a user writes it: the operator runs vLLM, the gateway routes "llama-completions" to it. */
function envoyFilterPool(name: string, router: Record<string, unknown> = {}): InferencePool {
  return testPool(
    {
      model: { name: 'meta-llama/Llama-3.1-8B-Instruct', servedName: SERVED },
      modelServer: { image: 'vllm/vllm-openai:v0.33.0' },
      router,
      gateway: { envoyFilter: true, namespace: 'istio-system', workloadSelector: { istio: 'ingressgateway' }, routeNames: [POOL_ROUTE] },
    },
    { name, namespace: 'ml' },
  );
}

const vllmHost = (pool: InferencePool) => `${pool.metadata.name}-vllm.ml.svc.cluster.local`;

/**
 * The gateway Istio would build for `pools` (each with its own named route to its vLLM Service and the
 * cluster of its router Service, TLS from its DestinationRule) and another app's route, with every
 * pool's rendered EnvoyFilter patches applied. `applied` counts the targets each patch found.
 */
function patchedGateway(
  pools: { pool: InferencePool; routeName: string; prefix: string; routerPort: number; pods: { host: string; port: number }[] }[],
  options: { listenPort?: number; adminPort?: number; other?: { port: number }; without?: string } = {},
): { bootstrap: Json; applied: number[] } {
  const clusters: GatewayCluster[] = [];
  for (const p of pools) {
    const dr = buildRouterDestinationRule(p.pool, OPTIONS);
    clusters.push({ name: istioClusterName(vllmHost(p.pool), 8000), endpoints: p.pods });
    clusters.push({
      name: istioClusterName(routerHost(p.pool, OPTIONS), ROUTER_PORTS.grpc),
      endpoints: [{ host: '127.0.0.1', port: p.routerPort }],
      http2: true,
      transportSocket: destinationRuleTransportSocket(dr, ROUTER_PORTS.grpc)!,
    });
  }
  const otherCluster = istioClusterName('other.apps.svc.cluster.local', 80);
  clusters.push({ name: otherCluster, endpoints: [{ host: '127.0.0.1', port: options.other?.port ?? 9 }] });
  const bootstrap = gatewayBootstrap({
    listenPort: options.listenPort ?? 0,
    adminPort: options.adminPort ?? 0,
    routes: [
      ...pools.map((p) => ({
        name: p.routeName,
        prefix: p.prefix,
        cluster: istioClusterName(vllmHost(p.pool), 8000),
        responseHeaders: { 'x-upstream-host': '%UPSTREAM_HOST%' },
      })),
      { name: 'other-app', prefix: '/other/', cluster: otherCluster, responseHeaders: { 'x-upstream-host': '%UPSTREAM_HOST%' } },
    ],
    clusters,
  });
  const applied: number[] = [];
  for (const p of pools) {
    const filter = buildEnvoyFilter(p.pool, OPTIONS)!;
    const patches = filter.spec.configPatches.filter((c) => c.applyTo !== options.without);
    applied.push(...applyEnvoyFilterPatches(bootstrap, patches as never).applied);
  }
  return { bootstrap, applied };
}

/** A pool whose rendered route patch targets `routeName` (the pool's spec.gateway.routeNames). */
function withRoute(pool: InferencePool, routeName: string): InferencePool {
  return { ...pool, spec: { ...pool.spec, gateway: { ...pool.spec.gateway, routeNames: [routeName] } } };
}

async function validate(dir: string, name: string, config: Json): Promise<{ code: number; output: string }> {
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(file, YAML.stringify(config));
  return run(envoyBinary(), ['--mode', 'validate', '--disable-hot-restart', '--log-level', 'warn', '-c', file], { timeout: 60_000 }).then(
    (r) => ({ code: 0, output: r.stdout + r.stderr }),
    (err: { code?: number; stdout?: string; stderr?: string }) => ({
      code: err.code ?? -1,
      output: `${err.stdout ?? ''}${err.stderr ?? ''}`,
    }),
  );
}

type HttpFilter = { name: string; disabled?: boolean; typed_config: Json };
const hcmOf = (bootstrap: Json) =>
  (
    bootstrap as {
      static_resources: {
        listeners: {
          filter_chains: {
            filters: { typed_config: { http_filters: HttpFilter[]; route_config: { virtual_hosts: { routes: Json[] }[] } } }[];
          }[];
        }[];
      };
    }
  ).static_resources.listeners[0]!.filter_chains[0]!.filters[0]!.typed_config;
const clusterOf = (bootstrap: Json, name: string) =>
  (bootstrap as { static_resources: { clusters: Json[] } }).static_resources.clusters.find((c) => c.name === name)!;

describeEnvoy('the rendered EnvoyFilter under envoy --mode validate', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-envoyfilter-validate-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const twoPools = () => [
    {
      pool: withRoute(envoyFilterPool('llama'), 'llama'),
      routeName: 'llama',
      prefix: '/llama/',
      routerPort: 19002,
      pods: [{ host: '10.0.0.1', port: 8000 }],
    },
    {
      pool: withRoute(envoyFilterPool('qwen', { failureMode: 'FailOpen' }), 'qwen'),
      routeName: 'qwen',
      prefix: '/qwen/',
      routerPort: 19003,
      pods: [{ host: '10.0.0.2', port: 8000 }],
    },
  ];

  it('accepts a gateway patched for a fail-closed and a fail-open pool, every patch having found its target', async () => {
    const { bootstrap, applied } = patchedGateway(twoPools());
    // Each pool: the listener filter, one route, one cluster; none may have matched nothing (or twice).
    expect(applied).toEqual([1, 1, 1, 1, 1, 1]);
    const hcm = hcmOf(bootstrap);
    expect(hcm.http_filters.map((f) => [f.name, f.disabled ?? false])).toEqual([
      ['envoy.filters.http.cors', false],
      ['envoy.filters.http.fault', false],
      ['kvroute.ext_proc.ml.llama', true],
      ['kvroute.ext_proc.ml.qwen', true],
      ['envoy.filters.http.router', false],
    ]);
    // Each pool's filter is enabled on its own route only; the other app's route has none.
    const perRoute = Object.fromEntries(
      hcm.route_config.virtual_hosts[0]!.routes.map((r) => [r.name, Object.keys((r.typed_per_filter_config as Json) ?? {})]),
    );
    expect(perRoute).toEqual({ llama: ['kvroute.ext_proc.ml.llama'], qwen: ['kvroute.ext_proc.ml.qwen'], 'other-app': [] });
    expect(hcm.http_filters.map((f) => f.typed_config.failure_mode_allow)).toEqual([undefined, undefined, false, true, undefined]);
    expect(Object.keys(clusterOf(bootstrap, istioClusterName('llama-vllm.ml.svc.cluster.local', 8000)))).toContain('load_balancing_policy');

    const result = await validate(dir, 'two-pools', bootstrap);
    expect(result).toEqual({ code: 0, output: expect.stringContaining('OK') });
  });

  it('rejects the gateway when a rendered patch is broken, so the check cannot pass vacuously', async () => {
    const broken: Array<[string, (f: EnvoyFilter) => void]> = [
      // FULL_DUPLEX_STREAMED bodies need trailers SEND.
      [
        'trailers skipped',
        (f) => (((f.spec.configPatches[0]!.patch.value.typed_config as Json).processing_mode as Json).request_trailer_mode = 'SKIP'),
      ],
      // A field the override_host policy does not have.
      [
        'unknown override_host field',
        (f) => {
          const lb = f.spec.configPatches.at(-1)!.patch.value.load_balancing_policy as {
            policies: { typed_extension_config: { typed_config: Json } }[];
          };
          lb.policies[0]!.typed_extension_config.typed_config.pick_first_host = true;
        },
      ],
      // A per-route config that is neither disabled nor overrides.
      [
        'empty per-route config',
        (f) =>
          ((f.spec.configPatches[1]!.patch.value.typed_per_filter_config as Record<string, Json>)['kvroute.ext_proc.ml.llama']!.overrides =
            undefined),
      ],
    ];
    for (const [name, breakIt] of broken) {
      const pool = withRoute(envoyFilterPool('llama'), 'llama');
      const filter = buildEnvoyFilter(pool, OPTIONS)!;
      breakIt(filter);
      const bootstrap = gatewayBootstrap({
        listenPort: 0,
        adminPort: 0,
        routes: [{ name: 'llama', prefix: '/', cluster: istioClusterName(vllmHost(pool), 8000) }],
        clusters: [
          { name: istioClusterName(vllmHost(pool), 8000), endpoints: [{ host: '10.0.0.1', port: 8000 }] },
          {
            name: istioClusterName(routerHost(pool, OPTIONS), ROUTER_PORTS.grpc),
            endpoints: [{ host: '127.0.0.1', port: 19002 }],
            http2: true,
          },
        ],
      });
      expect(applyEnvoyFilterPatches(bootstrap, JSON.parse(JSON.stringify(filter.spec.configPatches)) as never).applied).toEqual([1, 1, 1]);
      const result = await validate(dir, name.replace(/\W+/g, '-'), bootstrap);
      expect({ name, accepted: result.code === 0 }).toEqual({ name, accepted: false });
    }
  });

  it('refuses patch match fields the emulation does not evaluate, rather than applying them too widely', () => {
    const bootstrap = gatewayBootstrap({ listenPort: 0, adminPort: 0, routes: [], clusters: [] });
    const patch = {
      applyTo: 'HTTP_ROUTE',
      match: { context: 'GATEWAY', routeConfiguration: { portNumber: 80, vhost: { route: { name: 'x' } } } },
      patch: { operation: 'MERGE', value: {} },
    };
    expect(() => applyEnvoyFilterPatches(bootstrap, [patch])).toThrow(/unsupported keys portNumber/);
  });
});

describeEnvoy('real Envoy with the rendered EnvoyFilter, the real router and simulated vLLM pods', () => {
  let dir: string;
  const sims: KvrouteProcess[] = [];
  let pods: { host: string; port: number }[] = [];
  let router: KvrouteProcess;
  let routerMetricsPort: number;
  let envoy: RunningEnvoy;
  let deadRouterEnvoy: RunningEnvoy;
  let unpatchedClusterEnvoy: RunningEnvoy;
  let other: http.Server;
  let otherPort: number;
  const pool = envoyFilterPool('llama', { schedulingProfile: { scorerWeights: { prefixCache: 0 } }, sessionAffinity: { enabled: true } });

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-envoyfilter-envoy-'));
    for (const id of ['vllm-a', 'vllm-b']) {
      sims.push(
        await spawnKvroute(
          ['sim', '--host', '127.0.0.1', '--port', '0', '--pod-id', id, '--model', SERVED, '--frontend-overhead-ms', '0'],
          {
            readyLine: 'simulated vllm pod ready',
            name: id,
          },
        ),
      );
    }
    pods = sims.map((s) => ({ host: '127.0.0.1', port: portOf(s.ready, 'port') }));

    // Another app behind the same gateway.
    other = http.createServer((_req, res) => res.end('other app'));
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    otherPort = (other.address() as { port: number }).port;

    // The router as the operator renders it; only what a test process cannot take verbatim is rewritten.
    fs.writeFileSync(path.join(dir, 'router.yaml'), buildRouterConfigMap(pool, []).data!['router.yaml']!);
    const rendered = buildRouterDeployment(pool, { defaultImage: 'kvroute:test' }).spec!.template.spec!.containers.find(
      (c) => c.name === 'router',
    )!.args!;
    const rewrites: Record<string, string> = {
      [`--grpc-port=${ROUTER_PORTS.grpc}`]: '--grpc-port=0',
      [`--grpc-health-port=${ROUTER_PORTS.health}`]: '--grpc-health-port=0',
      [`--metrics-port=${ROUTER_PORTS.metrics}`]: '--metrics-port=0',
      [`--config-file=${CONFIG_DIR}/router.yaml`]: `--config-file=${path.join(dir, 'router.yaml')}`,
    };
    expect(Object.keys(rewrites).filter((a) => !rendered.includes(a))).toEqual([]);
    // Local mode instead of Kubernetes mode: the pool's pods become --endpoints (the router takes one or the other).
    const kubeMode = ['--pool-name=llama', '--pool-namespace=ml', '--pool-group=inference.kvroute.io'];
    expect(kubeMode.filter((a) => !rendered.includes(a))).toEqual([]);
    const args = [
      ...rendered.filter((a) => !kubeMode.includes(a)).map((a) => rewrites[a] ?? a),
      '--endpoints',
      pods.map((p) => `${p.host}:${p.port}`).join(','),
    ];
    router = await spawnKvroute(args, {
      readyLine: 'router started',
      readyUrl: (r) => `http://127.0.0.1:${portOf(r, 'metricsPort')}/readyz`,
      name: 'router',
    });
    routerMetricsPort = portOf(router.ready, 'metricsPort');

    const gateway = (routerPort: number, without?: string) =>
      patchedGateway([{ pool, routeName: POOL_ROUTE, prefix: '/v1/', routerPort, pods }], {
        other: { port: otherPort },
        ...(without ? { without } : {}),
      });
    const up = gateway(portOf(router.ready, 'grpcPort'));
    expect(up.applied).toEqual([1, 1, 1]);
    const envoyOn = (config: Json) =>
      startEnvoy({ binary: envoyBinary(), config: YAML.stringify(config), log: silentLogger, concurrency: 1 });
    envoy = await envoyOn(up.bootstrap);
    // The same gateway whose router is gone: a port nothing listens on.
    deadRouterEnvoy = await envoyOn(gateway(await freePort()).bootstrap);
    // The same gateway without the cluster patch: the control that shows the patch is what honours the pick.
    unpatchedClusterEnvoy = await envoyOn(gateway(portOf(router.ready, 'grpcPort'), 'CLUSTER').bootstrap);
  }, 180_000);

  afterAll(async () => {
    await unpatchedClusterEnvoy?.close();
    await deadRouterEnvoy?.close();
    await envoy?.close();
    await router?.stop();
    await Promise.all(sims.map((s) => s.stop()));
    other?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  const complete = (port: number, headers: Record<string, string> = {}) =>
    fetch(`http://127.0.0.1:${port}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ model: SERVED, prompt: 'Which pod answers this one?', max_tokens: 2 }),
    });
  const address = (p: { host: string; port: number }) => `${p.host}:${p.port}`;
  const routerRequests = async () => {
    const total = metricValue(await (await fetch(`http://127.0.0.1:${routerMetricsPort}/metrics`)).text(), 'kvroute_router_requests_total');
    return Number.isNaN(total) ? 0 : total; // no sample before the first request
  };

  it('sends each request on the pool route to the pod the router picked, also when that pick is pinned against round robin', async () => {
    for (let i = 0; i < 6; i++) {
      const res = await complete(envoy.ports.gateway!);
      expect(res.status).toBe(200);
      // The router stamps its pick on the response (session affinity); Envoy names the host it used.
      const picked = Buffer.from(res.headers.get('x-session-token') ?? '', 'base64').toString();
      expect(pods.map(address)).toContain(picked);
      expect(res.headers.get('x-upstream-host')).toBe(picked);
      expect(res.headers.get('x-inference-pod')).toBe(['vllm-a', 'vllm-b'][pods.map(address).indexOf(picked)]);
      await res.arrayBuffer();
    }
    // A session pinned to each pod in turn: round robin alone would alternate, the router's pick does not.
    for (const [i, pod] of pods.entries()) {
      const token = Buffer.from(address(pod)).toString('base64');
      for (let n = 0; n < 4; n++) {
        const res = await complete(envoy.ports.gateway!, { 'x-session-token': token });
        expect(res.status).toBe(200);
        expect(res.headers.get('x-inference-pod')).toBe(['vllm-a', 'vllm-b'][i]);
        expect(res.headers.get('x-upstream-host')).toBe(address(pod));
        await res.arrayBuffer();
      }
    }
  });

  it('ignores the pick without the cluster patch: the control for the test above', async () => {
    const pinned = pods[1]!;
    const token = Buffer.from(address(pinned)).toString('base64');
    const served = new Set<string>();
    // Least-request balancing picks at random between idle hosts: 16 requests all on one of two pods
    // would happen by chance once in 30,000 runs.
    for (let n = 0; n < 16; n++) {
      const res = await complete(unpatchedClusterEnvoy.ports.gateway!, { 'x-session-token': token });
      expect(res.status).toBe(200);
      // The router still picks the pinned pod...
      expect(Buffer.from(res.headers.get('x-session-token') ?? '', 'base64').toString()).toBe(address(pinned));
      served.add(res.headers.get('x-upstream-host') ?? '');
      await res.arrayBuffer();
    }
    // ...but the cluster's own balancing spreads the requests over both pods.
    expect([...served].sort()).toEqual(pods.map(address).sort());
  });

  it("leaves another app's route on the same gateway untouched: it never reaches the router", async () => {
    const before = await routerRequests();
    const res = await fetch(`http://127.0.0.1:${envoy.ports.gateway}/other/page`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('other app');
    expect(res.headers.get('x-upstream-host')).toBe(`127.0.0.1:${otherPort}`);
    expect(await routerRequests()).toBe(before);
    // A request on the pool route does reach it, so the count would have moved.
    await (await complete(envoy.ports.gateway!)).arrayBuffer();
    expect(await routerRequests()).toBe(before + 1);
  });

  it("fails closed on the pool route when the router is unreachable, and the other app's route keeps working", async () => {
    const pooled = await complete(deadRouterEnvoy.ports.gateway!);
    expect(pooled.status).toBeGreaterThanOrEqual(500);
    expect(pooled.headers.get('x-inference-pod')).toBeNull();
    await pooled.arrayBuffer();
    const res = await fetch(`http://127.0.0.1:${deadRouterEnvoy.ports.gateway}/other/page`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('other app');
  });
});
