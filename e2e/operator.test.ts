// The operator against a real kube-apiserver, etcd and garbage collector: create, update, drift,
// pruning, adoption, schema rejection, status and conditions, duplicate model names, and GC.

import { describe, it, expect, beforeAll, afterAll, jest } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import type { KubernetesObject, V1ConfigMap, V1Deployment, V1Pod } from '@kubernetes/client-node';
import YAML from 'yaml';
import { createLogger } from '../src/common/log.ts';
import { createRegistry } from '../src/common/metrics.ts';
import { Operator } from '../src/controllers/manager.ts';
import { KubeApiError, resourcePath, type KubeClient } from '../src/common/kube/kube-client.ts';
import { freePort, kubeTestsEnabled, startKube, waitFor, type KubeEnv } from './kube/cluster.ts';
import { createNamespace, installCrd, installKvrouteCrds, openCrd } from './kube/fixtures.ts';

const NS = 'ml';
const GV = 'inference.kvroute.io/v1alpha1';
const describeKube = kubeTestsEnabled() ? describe : describe.skip;
jest.setTimeout(30_000);

type Pool = KubernetesObject & { spec: Record<string, any>; status?: Record<string, any> };
type Status = { conditions?: { type: string; status: string; reason: string; message: string }[] } & Record<string, any>;

describeKube('operator against kube-apiserver', () => {
  let env: KubeEnv;
  let client: KubeClient;
  let operator: Operator;
  let metricsPort: number;

  const poolPath = (name?: string) => resourcePath(GV, 'InferencePool', NS, name);
  const modelPath = (name?: string) => resourcePath(GV, 'InferenceModel', NS, name);
  const get = <T>(apiVersion: string, kind: string, name: string) => client.get<T>(resourcePath(apiVersion, kind, NS, name));
  const exists = (apiVersion: string, kind: string, name: string) =>
    get(apiVersion, kind, name).then(
      () => true,
      (e: unknown) => (e instanceof KubeApiError && e.status === 404 ? false : Promise.reject(e)),
    );
  const condition = (s: Status | undefined, type: string) => s?.conditions?.find((c) => c.type === type);
  const createPool = (name: string, spec: Record<string, unknown>) =>
    client.create<Pool>({ apiVersion: GV, kind: 'InferencePool', metadata: { name, namespace: NS }, spec });
  const createModel = (name: string, spec: Record<string, unknown>) =>
    client.create<Pool>({ apiVersion: GV, kind: 'InferenceModel', metadata: { name, namespace: NS }, spec });
  const mergePatch = (p: string, body: unknown) => client.request('PATCH', p, { body, contentType: 'application/merge-patch+json' });
  /** Each test works on its own pool, so none depends on another's order. */
  const servedPool = async (name: string) => {
    const pool = await createPool(name, { model: { name: 'meta-llama/Llama-3.1-8B-Instruct' }, modelServer: { image: 'vllm/vllm-openai:v0.33.0', replicas: 2 } });
    await waitFor(() => exists('apps/v1', 'Deployment', `${name}-vllm`), `${name}-vllm Deployment`);
    return pool;
  };

  beforeAll(async () => {
    env = await startKube();
    client = env.client;
    await installKvrouteCrds(client);
    await env.startGarbageCollector();
    await createNamespace(client, NS);
    metricsPort = await freePort();
    const logFile = fs.createWriteStream(path.join(env.dir, 'operator.log'));
    operator = new Operator({
      kubeConfig: env.kubeConfig,
      leaderElect: false,
      leaseNamespace: 'default',
      defaultImage: 'kvroute:e2e',
      clusterDomain: 'cluster.local',
      resyncMs: 60_000,
      metricsPort,
      host: '127.0.0.1',
      log: createLogger({ level: 'debug', component: 'operator', write: (l) => logFile.write(l + '\n') }),
      registry: createRegistry(),
    });
    await operator.start();
  }, 120_000);

  afterAll(async () => {
    await operator?.stop();
    await env?.stop();
  }, 60_000);

  it('creates the router, its RBAC and the vLLM Deployment for a pool, server-side applied and owned by the pool', async () => {
    const pool = await createPool('llama', { model: { name: 'meta-llama/Llama-3.1-8B-Instruct' }, modelServer: { image: 'vllm/vllm-openai:v0.33.0', replicas: 2 } });
    for (const [apiVersion, kind, name] of [
      ['v1', 'ConfigMap', 'llama-router'],
      ['v1', 'ServiceAccount', 'llama-router'],
      ['rbac.authorization.k8s.io/v1', 'Role', 'llama-router'],
      ['rbac.authorization.k8s.io/v1', 'RoleBinding', 'llama-router'],
      ['v1', 'Service', 'llama-router'],
      ['apps/v1', 'Deployment', 'llama-router'],
      ['v1', 'Service', 'llama-vllm'],
      ['apps/v1', 'Deployment', 'llama-vllm'],
    ] as const) {
      await waitFor(() => exists(apiVersion, kind, name), `${kind} ${name}`);
    }
    const vllm = await get<V1Deployment & { metadata: { managedFields: { manager: string; operation: string }[] } }>('apps/v1', 'Deployment', 'llama-vllm');
    expect(vllm.metadata!.ownerReferences).toEqual([
      { apiVersion: GV, kind: 'InferencePool', name: 'llama', uid: pool.metadata!.uid, controller: true, blockOwnerDeletion: true },
    ]);
    expect(vllm.metadata.managedFields.map((f) => `${f.manager}:${f.operation}`)).toEqual(['kvroute-operator:Apply']);
    expect(vllm.spec!.replicas).toBe(2);
    const args = vllm.spec!.template.spec!.containers[0]!.args!;
    expect(args).toContain('--block-size=16');
    expect(args).toContain('--prefix-caching-hash-algo');
    expect(args.find((a) => a.startsWith('--kv-events-config='))).toContain('"topic":"kv@$(POD_IP)@meta-llama/Llama-3.1-8B-Instruct"');
  });

  it('fills schema defaults on the stored pool and reports status with observedGeneration and conditions', async () => {
    await servedPool('defaults');
    const pool = await client.get<Pool>(poolPath('defaults'));
    expect(pool.spec.modelServer).toMatchObject({ blockSize: 16, gpuMemoryUtilization: 0.7, kvCacheDtype: 'auto', port: 8000 });
    expect(pool.spec.router).toMatchObject({ replicas: 1, failureMode: 'FailClose', loadBound: 1.25 });
    expect(pool.spec.indexer).toMatchObject({ eventPort: 5557, replayPort: 5558 });
    const status = await waitFor(async () => {
      const p = await client.get<Pool>(poolPath('defaults'));
      return p.status?.observedGeneration === 1 ? (p.status as Status) : undefined;
    }, 'pool status');
    expect(condition(status, 'Ready')).toMatchObject({ status: 'False', reason: 'NoReadyEndpoints' });
    expect(condition(status, 'Progressing')).toMatchObject({ status: 'True', reason: 'RollingOut' });
    expect(condition(status, 'Degraded')).toMatchObject({ status: 'False' });
  });

  it('stores a null replayPort for adopted pods without replay and renders it into indexer.yaml', async () => {
    await createPool('no-replay', { model: { name: 'm' }, selector: { app: 'no-replay' }, indexer: { eventPort: 6100, replayPort: null } });
    expect((await client.get<Pool>(poolPath('no-replay'))).spec.indexer).toMatchObject({ eventPort: 6100, replayPort: null });
    const cm = await waitFor(
      () => client.get<V1ConfigMap>(resourcePath('v1', 'ConfigMap', NS, 'no-replay-router')).catch((e: unknown) => (e instanceof KubeApiError && e.status === 404 ? undefined : Promise.reject(e))),
      'no-replay-router ConfigMap',
    );
    expect(YAML.parse(cm.data!['indexer.yaml']!).zmq.discovery).toMatchObject({ port: 6100, replayPort: null });
  });

  it('rejects invalid pools and models at the API server with a message naming the field', async () => {
    const reject = async (p: Promise<unknown>) => {
      const err = await p.then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(KubeApiError);
      expect((err as KubeApiError).status).toBe(422);
      return (err as KubeApiError).message;
    };
    expect(await reject(createPool('bad-util', { model: { name: 'm' }, modelServer: { image: 'i', gpuMemoryUtilization: 1.5 } }))).toMatch(
      /spec\.modelServer\.gpuMemoryUtilization: Invalid value: 1\.5: spec\.modelServer\.gpuMemoryUtilization in body should be less than or equal to 1/,
    );
    expect(await reject(createPool('bad-adopt', { model: { name: 'm' } }))).toContain('selector is required when modelServer is absent');
    expect(await reject(createPool('bad-gw', { model: { name: 'm' }, selector: { a: 'b' }, gateway: { envoyFilter: true } }))).toContain(
      'workloadSelector is required when envoyFilter is true',
    );
    expect(await reject(createPool('bad-replay', { model: { name: 'm' }, selector: { a: 'b' }, indexer: { eventPort: 6000, replayPort: 6000 } }))).toContain(
      'replayPort must differ from eventPort',
    );
    expect(await reject(createPool('bad-events', { model: { name: 'm' }, modelServer: { image: 'i' }, indexer: { eventPort: 8000 } }))).toContain(
      'indexer.eventPort and indexer.replayPort must differ from modelServer.port',
    );
    expect(await reject(createPool('bad-mode', { model: { name: 'm' }, selector: { a: 'b' }, router: { failureMode: 'Maybe' } }))).toMatch(
      /spec\.router\.failureMode: Unsupported value: "Maybe"/,
    );
    expect(
      await reject(createModel('bad-weights', { modelName: 'x', poolRef: { name: 'any' }, targetModels: [{ name: 'a', weight: 1 }, { name: 'b' }] })),
    ).toContain('weights must be set on all targetModels or on none');
    await createModel('immutable', { modelName: 'x', poolRef: { name: 'any' } });
    expect(await reject(mergePatch(modelPath('immutable'), { spec: { modelName: 'y' } }))).toContain('modelName is immutable');
    await client.delete(modelPath('immutable'));
  });

  it('rolls a spec change into the vLLM Deployment and records the new observedGeneration', async () => {
    await servedPool('update');
    await mergePatch(poolPath('update'), { spec: { modelServer: { blockSize: 32, hashSeed: '1234' } } });
    await waitFor(async () => {
      const d = await get<V1Deployment>('apps/v1', 'Deployment', 'update-vllm');
      const c = d.spec!.template.spec!.containers[0]!;
      return c.args!.includes('--block-size=32') && c.env!.some((e) => e.name === 'PYTHONHASHSEED' && e.value === '1234');
    }, 'vLLM Deployment with --block-size=32');
    const cm = await get<V1ConfigMap>('v1', 'ConfigMap', 'update-router');
    expect(YAML.parse(cm.data!['indexer.yaml']!)).toMatchObject({ blockSize: 32, hashSeed: '1234' });
    await waitFor(async () => (await client.get<Pool>(poolPath('update'))).status?.observedGeneration === 2, 'observedGeneration 2');
  });

  it('repairs drift: a deleted ConfigMap comes back and a hand-edited replica count is restored', async () => {
    await servedPool('drift');
    await waitFor(() => exists('v1', 'ConfigMap', 'drift-router'), 'ConfigMap');
    await client.delete(resourcePath('v1', 'ConfigMap', NS, 'drift-router'));
    await waitFor(() => exists('v1', 'ConfigMap', 'drift-router'), 'ConfigMap recreated');
    await mergePatch(resourcePath('apps/v1', 'Deployment', NS, 'drift-vllm'), { spec: { replicas: 7 } });
    await waitFor(async () => (await get<V1Deployment>('apps/v1', 'Deployment', 'drift-vllm')).spec!.replicas === 2, 'replicas restored to 2');
  });

  it('adopts existing serving pods by selector and reflects them and their readiness in status within a second', async () => {
    await createPool('adopted', { model: { name: 'Qwen/Qwen3-8B' }, selector: { app: 'byo-vllm' } });
    await waitFor(() => exists('apps/v1', 'Deployment', 'adopted-router'), 'router for adopted pool');
    expect(await exists('apps/v1', 'Deployment', 'adopted-vllm')).toBe(false);
    const pod = (name: string, labels: Record<string, string>) =>
      client.create<V1Pod>({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NS, labels }, spec: { containers: [{ name: 'vllm', image: 'vllm' }] } });
    const t0 = Date.now();
    await pod('byo-0', { app: 'byo-vllm', 'llm-d.ai/inferenceServing': 'true' });
    await pod('byo-unlabelled', { app: 'byo-vllm' });
    const status = await waitFor(async () => {
      const s = (await client.get<Pool>(poolPath('adopted'))).status;
      return s?.endpoints?.length === 1 ? s : undefined;
    }, 'endpoint in status', 1000, 20);
    const seenMs = Date.now() - t0;
    expect(status.endpoints).toEqual([{ pod: 'byo-0', address: '', ready: false }]);

    const t1 = Date.now();
    await client.request('PATCH', resourcePath('v1', 'Pod', NS, 'byo-0') + '/status', {
      body: { status: { podIP: '10.1.2.3', conditions: [{ type: 'Ready', status: 'True' }] } },
      contentType: 'application/strategic-merge-patch+json',
    });
    await waitFor(async () => (await client.get<Pool>(poolPath('adopted'))).status?.readyReplicas === 1, 'readyReplicas 1', 1000, 20);
    const readyMs = Date.now() - t1;
    // The router Deployment has no controller here; report it available the way kube-controller-manager would.
    await client.request('PATCH', resourcePath('apps/v1', 'Deployment', NS, 'adopted-router') + '/status', {
      body: { status: { observedGeneration: 1, replicas: 1, updatedReplicas: 1, readyReplicas: 1, availableReplicas: 1 } },
      contentType: 'application/merge-patch+json',
    });
    const ready = await waitFor(async () => {
      const s = (await client.get<Pool>(poolPath('adopted'))).status as Status;
      return condition(s, 'Ready')?.status === 'True' ? s : undefined;
    }, 'Ready=True');
    expect(condition(ready, 'Progressing')).toMatchObject({ status: 'False', reason: 'RolledOut' });
    process.stdout.write(`pod -> status: listed in ${seenMs} ms, ready in ${readyMs} ms\n`);

    await client.delete(resourcePath('v1', 'Pod', NS, 'byo-0'));
    await waitFor(async () => (await client.get<Pool>(poolPath('adopted'))).status?.endpoints?.length === 0, 'endpoint removed', 1000, 20);
  });

  it('accepts the older of two InferenceModels claiming one modelName and reports the other, then hands over when it goes', async () => {
    await createPool('dup', { model: { name: 'm' }, selector: { app: 'dup' } });
    await createModel('chat-a', { modelName: 'chat', poolRef: { name: 'dup' } });
    await waitFor(async () => condition((await client.get<Pool>(modelPath('chat-a'))).status, 'Accepted')?.status === 'True', 'chat-a accepted');
    await createModel('chat-b', { modelName: 'chat', poolRef: { name: 'dup' }, criticality: 'Critical' });
    const loser = await waitFor(async () => {
      const c = condition((await client.get<Pool>(modelPath('chat-b'))).status, 'Accepted');
      return c?.status === 'False' ? c : undefined;
    }, 'chat-b rejected');
    expect(loser).toMatchObject({ reason: 'ModelNameInUse' });
    expect(loser.message).toContain('"chat-a"');
    const event = await waitFor(async () => {
      const list = await client.list<{ type: string; reason: string; involvedObject: { name: string } }>(resourcePath('v1', 'Event', NS));
      return list.items.find((e) => e.involvedObject.name === 'chat-b' && e.reason === 'ModelNameInUse');
    }, 'ModelNameInUse Event');
    expect(event.type).toBe('Warning');
    const routerModels = async () => YAML.parse((await get<V1ConfigMap>('v1', 'ConfigMap', 'dup-router')).data!['router.yaml']!).models;
    await waitFor(async () => (await routerModels()).length === 1, 'one model in router.yaml');
    expect((await routerModels())[0]).toMatchObject({ modelName: 'chat', criticality: 'Standard' });

    await client.delete(modelPath('chat-a'));
    await waitFor(async () => condition((await client.get<Pool>(modelPath('chat-b'))).status, 'Accepted')?.status === 'True', 'chat-b accepted');
    await waitFor(async () => (await routerModels())[0]?.criticality === 'Critical', 'router.yaml follows chat-b');
  });

  it('reports a model whose pool does not exist as unresolved', async () => {
    await createModel('orphan', { modelName: 'o', poolRef: { name: 'nope' } });
    const c = await waitFor(async () => condition((await client.get<Pool>(modelPath('orphan'))).status, 'ResolvedRefs'), 'ResolvedRefs');
    expect(c).toMatchObject({ status: 'False', reason: 'PoolNotFound' });
  });

  it('prunes the vLLM objects when a pool stops running model servers', async () => {
    await servedPool('prune');
    await client.request('PATCH', poolPath('prune'), {
      body: [
        { op: 'remove', path: '/spec/modelServer' },
        { op: 'add', path: '/spec/selector', value: { app: 'external' } },
      ],
      contentType: 'application/json-patch+json',
    });
    await waitFor(async () => !(await exists('apps/v1', 'Deployment', 'prune-vllm')) && !(await exists('v1', 'Service', 'prune-vllm')), 'vLLM objects pruned');
    expect(await exists('apps/v1', 'Deployment', 'prune-router')).toBe(true);
  });

  it('creates the EnvoyFilter and the Gateway API InferencePool once their CRDs exist, and says Degraded while Istio is missing', async () => {
    await createPool('gw', { model: { name: 'm' }, selector: { app: 'gw' }, router: { failureMode: 'FailOpen' }, gateway: { envoyFilter: true, workloadSelector: { istio: 'ingressgateway' } } });
    const degraded = await waitFor(async () => {
      const c = condition((await client.get<Pool>(poolPath('gw'))).status, 'Degraded');
      return c?.status === 'True' ? c : undefined;
    }, 'Degraded=True without Istio');
    expect(degraded).toMatchObject({ reason: 'MissingAPI' });

    await installCrd(client, openCrd('networking.istio.io', 'v1alpha3', 'EnvoyFilter', 'envoyfilters'));
    await installCrd(client, openCrd('inference.networking.k8s.io', 'v1', 'InferencePool', 'inferencepools'));
    // The CRD informer wakes the pools when the Gateway API CRD appears; the EnvoyFilter comes with that reconcile.
    const ef = await waitFor(
      () => get<{ spec: any }>('networking.istio.io/v1alpha3', 'EnvoyFilter', 'gw-ext-proc').catch(() => undefined),
      'EnvoyFilter',
      15_000,
    );
    expect(ef.spec.configPatches[0].patch.value.typed_config.failure_mode_allow).toBe(true);
    const gie = await waitFor(() => client.get<{ spec: any }>('/apis/inference.networking.k8s.io/v1/namespaces/ml/inferencepools/gw').catch(() => undefined), 'GIE InferencePool', 15_000);
    expect(gie.spec.endpointPickerRef).toEqual({ name: 'gw-router', port: { number: 9002 }, failureMode: 'FailOpen' });
    await waitFor(async () => condition((await client.get<Pool>(poolPath('gw'))).status, 'Degraded')?.status === 'False', 'Degraded=False', 15_000);
    // The garbage collector only watches kinds whose CRD appeared after it started from its next 30 s
    // rediscovery; what it will follow then is the controller reference.
    const gw = await client.get<Pool>(poolPath('gw'));
    for (const owned of [ef, gie] as KubernetesObject[]) {
      expect(owned.metadata!.ownerReferences).toEqual([expect.objectContaining({ kind: 'InferencePool', uid: gw.metadata!.uid, controller: true })]);
    }
  });

  it('lets the garbage collector delete everything a pool owned when the pool is deleted', async () => {
    expect(env.gc).toBe(true);
    await servedPool('gc');
    await waitFor(() => exists('rbac.authorization.k8s.io/v1', 'RoleBinding', 'gc-router'), 'gc RoleBinding');
    await client.delete(poolPath('gc'));
    const t0 = Date.now();
    for (const [apiVersion, kind, name] of [
      ['apps/v1', 'Deployment', 'gc-vllm'],
      ['v1', 'Service', 'gc-vllm'],
      ['apps/v1', 'Deployment', 'gc-router'],
      ['v1', 'Service', 'gc-router'],
      ['v1', 'ConfigMap', 'gc-router'],
      ['v1', 'ServiceAccount', 'gc-router'],
      ['rbac.authorization.k8s.io/v1', 'Role', 'gc-router'],
      ['rbac.authorization.k8s.io/v1', 'RoleBinding', 'gc-router'],
    ] as const) {
      await waitFor(async () => !(await exists(apiVersion, kind, name)), `GC of ${kind} ${name}`, 10_000, 50);
    }
    process.stdout.write(`garbage collection of a pool's objects took ${Date.now() - t0} ms\n`);
    // Foreground deletion keeps the pool until its children are gone; the operator must not recreate them.
    await createPool('fg', { model: { name: 'm' }, selector: { app: 'fg' } });
    await waitFor(() => exists('apps/v1', 'Deployment', 'fg-router'), 'fg router');
    await client.delete(poolPath('fg'), undefined, 'Foreground');
    await waitFor(async () => !(await exists(GV, 'InferencePool', 'fg')), 'pool gone after its children (foreground)', 15_000, 100);
    expect(await exists('apps/v1', 'Deployment', 'fg-router')).toBe(false);
  });

  it('exposes reconcile counts, durations and queue depth on /metrics', async () => {
    await createPool('metrics', { model: { name: 'm' }, selector: { app: 'metrics' } });
    await waitFor(() => exists('apps/v1', 'Deployment', 'metrics-router'), 'metrics router');
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(text).toMatch(/kvroute_operator_reconcile_total\{controller="inferencepool",result="success"\} [1-9]/);
    expect(text).toContain('kvroute_operator_reconcile_duration_seconds_bucket');
    expect(text).toContain('kvroute_operator_workqueue_depth');
  });
});
