// The router's Kubernetes endpoint source against a real kube-apiserver, running as the router's own
// ServiceAccount with the Role the operator renders: endpoints are the pool's Ready serving pods x its
// target ports, follow pods turning Ready, unready or deleted, and follow the pool's selector and port;
// a missing or forbidden pool is reported as such. Pod status is written by the test, as a kubelet would.

import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { API_GROUP, GROUP_VERSION } from '../src/api/meta.ts';
import type { KubeObjectLike } from '../src/common/kube/kube-client.ts';
import { createLogger } from '../src/common/log.ts';
import { podSelector } from '../src/controllers/objects.ts';
import { buildRouterRbac } from '../src/controllers/pool/router.ts';
import { testPool } from '../src/controllers/testing.ts';
import { createKubeEndpointSource } from '../src/router/endpoints/kube-source.ts';
import { selectionFromPool } from '../src/router/endpoints/pool-selection.ts';
import type { EndpointSource } from '../src/router/types.ts';
import { kubeTestsEnabled, startKube, usePortRange, waitFor, type KubeEnv } from './kube/cluster.ts';
import {
  createModelServerPod,
  createNamespace,
  installCrd,
  installKvrouteCrds,
  openCrd,
  serviceAccountKubeconfig,
  setPodStatus as setKubeletStatus,
} from './kube/fixtures.ts';

const describeKube = kubeTestsEnabled() ? describe : describe.skip;
jest.setTimeout(30_000);
const NS = 'router-e2e';
const SERVING = { key: 'llm-d.ai/inferenceServing', value: 'true' };
const GIE_GROUP = 'inference.networking.k8s.io';

describeKube('router endpoint source against kube-apiserver', () => {
  let env: KubeEnv;
  let routerKubeConfig: KubeConfig;
  let metricsServer: http.Server;
  let metricsPort: number;
  const sources: EndpointSource[] = [];
  let logs = '';

  const podPath = (name: string) => `/api/v1/namespaces/${NS}/pods/${name}`;
  const kvroutePoolPath = (name: string) => `/apis/${GROUP_VERSION}/namespaces/${NS}/inferencepools/${name}`;

  const createPod = (name: string, labels: Record<string, string>) => createModelServerPod(env.client, NS, name, labels);
  const setPodStatus = (name: string, ip: string, ready: boolean) => setKubeletStatus(env.client, NS, name, ip, ready);

  async function mergePatch(p: string, body: unknown): Promise<void> {
    await env.client.request('PATCH', p, { body, contentType: 'application/merge-patch+json' });
  }

  function start(options: Partial<Parameters<typeof createKubeEndpointSource>[0]>, kubeConfig = routerKubeConfig): EndpointSource {
    const source = createKubeEndpointSource({
      kubeConfig,
      namespace: NS,
      servingLabel: SERVING,
      scrape: { intervalMs: 50, stalenessMs: 2000 },
      log: createLogger({ level: 'debug', write: (l) => (logs += l + '\n') }),
      registry: new Registry(),
      retry: { initialMs: 100, maxMs: 400 },
      ...options,
    });
    sources.push(source);
    return source;
  }

  const addresses = (source: EndpointSource) =>
    source
      .snapshot()
      .map((s) => s.endpoint.address)
      .sort();

  async function waitAddresses(source: EndpointSource, expected: string[], what: string): Promise<void> {
    await waitFor(
      () => JSON.stringify(addresses(source)) === JSON.stringify([...expected].sort()) || undefined,
      `${what}: ${expected.join(', ')}`,
      10_000,
      20,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; endpoints are ${addresses(source).join(', ') || 'none'}`);
    });
  }

  beforeAll(async () => {
    usePortRange(16500, 16599);
    env = await startKube();
    await installKvrouteCrds(env.client);
    await installCrd(env.client, openCrd(GIE_GROUP, 'v1', 'InferencePool', 'inferencepools'));
    await createNamespace(env.client, NS);
    // The Role the operator grants a pool's router, for pool "llama" (it names no pool: any in the namespace).
    for (const obj of buildRouterRbac(testPool({ model: { name: 'm' }, selector: { matchLabels: { app: 'x' } } }, { namespace: NS })))
      await env.client.create(obj as KubeObjectLike);
    routerKubeConfig = (await serviceAccountKubeconfig(env, NS, 'llama-router', 'router.kubeconfig')).kubeConfig;

    // An engine's /metrics on every loopback address (the pods' IPs 127.0.0.2, .3, ...), so the source's
    // endpoints are scraped end to end. Each pod must answer: the snapshot leaves out an endpoint whose
    // scrape finds nothing listening (a killed pod).
    metricsServer = http.createServer((_req, res) =>
      res.end('vllm:num_requests_waiting{model_name="m"} 3\nvllm:kv_cache_usage_perc{model_name="m"} 0.25\n'),
    );
    await new Promise<void>((r) => metricsServer.listen(0, '0.0.0.0', r));
    metricsPort = (metricsServer.address() as AddressInfo).port;
  }, 120_000);

  afterAll(async () => {
    for (const s of sources) await s.close();
    metricsServer?.closeAllConnections();
    await new Promise((r) => metricsServer?.close(r) ?? r(undefined));
    await env?.stop();
  }, 60_000);

  it("selects the kvroute pool's Ready serving pods and follows readiness, deletion and selector and port changes", async () => {
    const labels = { app: 'vllm', ...{ [SERVING.key]: SERVING.value } };
    await env.client.create({
      apiVersion: GROUP_VERSION,
      kind: 'InferencePool',
      metadata: { name: 'llama', namespace: NS },
      spec: { model: { name: 'm' }, selector: { matchLabels: { app: 'vllm' } }, targetPorts: [{ number: metricsPort }] },
    });
    await createPod('vllm-a', labels);
    await setPodStatus('vllm-a', '127.0.0.2', true);
    await createPod('vllm-b', labels);
    await setPodStatus('vllm-b', '127.0.0.3', false);
    // Never endpoints: outside the selector, or without the serving label.
    await createPod('other', { app: 'other', [SERVING.key]: SERVING.value });
    await setPodStatus('other', '127.0.0.8', true);
    await createPod('unlabelled', { app: 'vllm' });
    await setPodStatus('unlabelled', '127.0.0.9', true);

    const source = start({ poolName: 'llama', poolGroup: API_GROUP });
    await waitFor(() => source.synced(), 'synced');
    await waitAddresses(source, [`127.0.0.2:${metricsPort}`], 'the Ready pod of the pool');
    const a = await waitFor(() => source.snapshot()[0]?.metrics ?? undefined, 'pod A scraped through its pod IP', 5000, 20);
    expect(a).toMatchObject({ waitingRequests: 3, kvCacheUsage: 0.25 });
    expect(source.snapshot()[0]!.endpoint).toMatchObject({ name: 'vllm-a', namespace: NS, ip: '127.0.0.2', port: metricsPort });

    await setPodStatus('vllm-b', '127.0.0.3', true);
    await waitAddresses(source, [`127.0.0.2:${metricsPort}`, `127.0.0.3:${metricsPort}`], 'pod B turning Ready');
    await setPodStatus('vllm-a', '127.0.0.2', false);
    await waitAddresses(source, [`127.0.0.3:${metricsPort}`], 'pod A turning unready');
    await env.client.delete(podPath('vllm-b'));
    await waitAddresses(source, [], 'pod B deleted');

    await setPodStatus('vllm-a', '127.0.0.2', true);
    await createPod('vllm2-c', { app: 'vllm2', [SERVING.key]: SERVING.value });
    await setPodStatus('vllm2-c', '127.0.0.4', true);
    await waitAddresses(source, [`127.0.0.2:${metricsPort}`], 'pod A back');
    await mergePatch(kvroutePoolPath('llama'), { spec: { selector: { matchLabels: { app: 'vllm2' } }, targetPorts: [{ number: 8100 }] } });
    await waitAddresses(source, ['127.0.0.4:8100'], 'the pool selecting app=vllm2 on port 8100');
    expect(source.synced()).toBe(true);
  });

  it("reads a GIE v1 pool's matchLabels and every target port", async () => {
    await env.client.create({
      apiVersion: `${GIE_GROUP}/v1`,
      kind: 'InferencePool',
      metadata: { name: 'gie', namespace: NS },
      spec: {
        selector: { matchLabels: { app: 'gie' } },
        targetPorts: [{ number: 8000 }, { number: 8001 }],
        endpointPickerRef: { name: 'epp', port: { number: 9002 } },
      },
    });
    await createPod('gie-a', { app: 'gie', [SERVING.key]: SERVING.value });
    await setPodStatus('gie-a', '127.0.0.5', true);
    // The router's Role covers kvroute's group only; an llm-d deployment grants GIE's. Use the admin here.
    const source = start({ poolName: 'gie', poolGroup: GIE_GROUP }, env.kubeConfig);
    await waitFor(() => source.synced(), 'synced');
    await waitAddresses(source, ['127.0.0.5:8000', '127.0.0.5:8001'], 'one endpoint per target port');
  });

  it('selects pods by --endpoint-selector and --endpoint-target-ports without any pool', async () => {
    await createPod('sel-a', { app: 'sel', [SERVING.key]: SERVING.value });
    await setPodStatus('sel-a', '127.0.0.6', true);
    const source = start({ selector: { app: 'sel' }, targetPorts: [9000] });
    await waitFor(() => source.synced(), 'synced');
    await waitAddresses(source, ['127.0.0.6:9000'], 'the selected pod');
  });

  it('waits for a missing pool, saying so, and is synced once it is created', async () => {
    const source = start({ poolName: 'late', poolGroup: API_GROUP });
    await waitFor(() => logs.includes(`InferencePool ${NS}/late: not found; retrying`) || undefined, 'the not-found log');
    expect(source.synced()).toBe(false);
    await createPod('late-a', { app: 'late', [SERVING.key]: SERVING.value });
    await setPodStatus('late-a', '127.0.0.7', true);
    await env.client.create({
      apiVersion: GROUP_VERSION,
      kind: 'InferencePool',
      metadata: { name: 'late', namespace: NS },
      spec: { model: { name: 'm' }, selector: { matchLabels: { app: 'late' } } },
    });
    await waitFor(() => source.synced(), 'synced once the pool exists', 10_000);
    await waitAddresses(source, ['127.0.0.7:8000'], "the late pool's pod on the default target port");
    await env.client.delete(kvroutePoolPath('late'));
    await waitFor(() => !source.synced() || undefined, 'unsynced once the pool is deleted');
    expect(addresses(source)).toEqual([]);
  });

  it('reports a pool the router may not read as forbidden, naming the permission it lacks', async () => {
    const source = start({ poolName: 'gie', poolGroup: GIE_GROUP });
    await waitFor(
      () =>
        logs.includes(
          `InferencePool ${NS}/gie: forbidden; the router's ServiceAccount needs get, list and watch on inferencepools.${GIE_GROUP}`,
        ) || undefined,
      'the forbidden log',
    );
    expect(source.synced()).toBe(false);
  });

  it('reads the same pod selector from a kvroute pool as the operator renders for it', () => {
    for (const spec of [
      { model: { name: 'm' }, modelServer: { image: 'vllm' } },
      { model: { name: 'm' }, selector: { matchLabels: { app: 'adopted' } } },
    ]) {
      const pool = testPool(spec, { namespace: NS });
      expect(selectionFromPool(API_GROUP, JSON.parse(JSON.stringify(pool))).selector).toEqual(podSelector(pool));
    }
  });
});
