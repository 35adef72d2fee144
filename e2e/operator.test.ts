// The operator against a real kube-apiserver, etcd and garbage collector: create, update, drift,
// pruning, adoption, schema and CEL rejection, status and conditions, duplicate model names, LoRA
// adapters from InferenceModels, optional APIs found through discovery, poolRef pools, and GC.

import { describe, it, expect, beforeAll, afterAll, jest } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import type { KubernetesObject, V1ConfigMap, V1Deployment, V1Pod } from '@kubernetes/client-node';
import YAML from 'yaml';
import { createLogger } from '../src/common/log.ts';
import { createRegistry } from '../src/common/metrics.ts';
import { Operator } from '../src/controllers/manager.ts';
import { KubeApiError, resourcePath, type KubeClient } from '../src/common/kube/kube-client.ts';
import { until } from '../test/support/until.ts';
import { kubeTestsEnabled, startKube, type KubeEnv } from './kube/cluster.ts';
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
  let logRecords: Record<string, unknown>[] = [];

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
  /** Installs a CRD unless an earlier test did: each test may need it, whatever ran before. */
  const ensureCrd = async (crd: Parameters<typeof installCrd>[1]) => {
    const there = await client.get(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`).then(
      () => true,
      () => false,
    );
    if (!there) await installCrd(client, crd);
  };
  /** Each test works on its own pool, so none depends on another's order. */
  const servedPool = async (name: string) => {
    const pool = await createPool(name, {
      model: { name: 'meta-llama/Llama-3.1-8B-Instruct' },
      modelServer: { image: 'vllm/vllm-openai:v0.33.0', replicas: 2 },
    });
    await until(() => exists('apps/v1', 'Deployment', `${name}-vllm`), { message: `${name}-vllm Deployment` });
    return pool;
  };

  beforeAll(async () => {
    env = await startKube();
    client = env.client;
    await installKvrouteCrds(client);
    await env.startGarbageCollector();
    await createNamespace(client, NS);
    const logFile = fs.createWriteStream(path.join(env.dir, 'operator.log'));
    logRecords = [];
    // The metrics server listens on port 0 and logs the port it bound.
    const write = (line: string) => {
      logFile.write(line + '\n');
      const record = JSON.parse(line) as Record<string, unknown>;
      logRecords.push(record);
      if (record.msg === 'http server listening' && record.server === 'metrics') metricsPort = record.port as number;
    };
    operator = new Operator({
      kubeConfig: env.kubeConfig,
      leaderElect: false,
      leaseNamespace: 'default',
      defaultImage: 'kvroute:e2e',
      clusterDomain: 'cluster.local',
      resyncMs: 60_000,
      metricsPort: 0,
      host: '127.0.0.1',
      log: createLogger({ level: 'debug', component: 'operator', write }),
      registry: createRegistry(),
    });
    await operator.start();
    expect(metricsPort).toBeGreaterThan(0);
  }, 120_000);

  afterAll(async () => {
    await operator?.stop();
    await env?.stop();
  }, 60_000);

  it('creates the router, its RBAC and the vLLM Deployment for a pool, server-side applied and owned by the pool', async () => {
    const pool = await createPool('llama', {
      model: { name: 'meta-llama/Llama-3.1-8B-Instruct' },
      modelServer: { image: 'vllm/vllm-openai:v0.33.0', replicas: 2 },
    });
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
      await until(() => exists(apiVersion, kind, name), { message: `${kind} ${name}` });
    }
    const vllm = await get<V1Deployment & { metadata: { managedFields: { manager: string; operation: string }[] } }>(
      'apps/v1',
      'Deployment',
      'llama-vllm',
    );
    expect(vllm.metadata!.ownerReferences).toEqual([
      { apiVersion: GV, kind: 'InferencePool', name: 'llama', uid: pool.metadata!.uid, controller: true, blockOwnerDeletion: true },
    ]);
    expect(vllm.metadata.managedFields.map((f) => `${f.manager}:${f.operation}`)).toEqual(['kvroute-operator:Apply']);
    expect(vllm.spec!.replicas).toBe(2);
    const args = vllm.spec!.template.spec!.containers[0]!.args!;
    expect(args).toContain('--block-size=16');
    expect(args).toContain('--prefix-caching-hash-algo');
    expect(args.find((a) => a.startsWith('--kv-events-config='))).toContain('"topic":"kv@$(POD_IP)@meta-llama/Llama-3.1-8B-Instruct"');
    // What a real cluster needs of a vLLM pod, as the API server stored it.
    expect(vllm.spec!.strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } });
    const pod = vllm.spec!.template.spec!;
    const c = pod.containers[0]!;
    expect(c.resources!.requests).toEqual({ cpu: '4', memory: '16Gi' });
    expect(c.env!.find((e) => e.name === 'PYTHONHASHSEED')?.value).toBe('0');
    expect(c.env!.find((e) => e.name === 'HF_HOME')?.value).toBe('/model-cache');
    expect(c.livenessProbe).toMatchObject({ timeoutSeconds: 10, failureThreshold: 6 });
    expect(c.startupProbe).toMatchObject({ periodSeconds: 10, failureThreshold: 180 });
    expect(pod.volumes).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: '8Gi' } })]),
    );
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
  });

  it('fills schema defaults on the stored pool and reports status with observedGeneration and conditions', async () => {
    await servedPool('defaults');
    const pool = await client.get<Pool>(poolPath('defaults'));
    expect(pool.spec.modelServer).toMatchObject({ blockSize: 16, gpuMemoryUtilization: 0.7, kvCacheDtype: 'auto', port: 8000 });
    expect(pool.spec.router).toMatchObject({ replicas: 1, failureMode: 'FailClose', loadBound: 1.25 });
    expect(pool.spec.indexer).toMatchObject({ eventPort: 5557, replayPort: 5558 });
    const status = await until(
      async () => {
        const p = await client.get<Pool>(poolPath('defaults'));
        return p.status?.observedGeneration === 1 ? (p.status as Status) : undefined;
      },
      { message: 'pool status' },
    );
    expect(condition(status, 'Ready')).toMatchObject({ status: 'False', reason: 'NoReadyEndpoints' });
    expect(condition(status, 'Progressing')).toMatchObject({ status: 'True', reason: 'RollingOut' });
    expect(condition(status, 'Degraded')).toMatchObject({ status: 'False' });
  });

  it('stores a null replayPort for adopted pods without replay and renders it into indexer.yaml', async () => {
    await createPool('no-replay', {
      model: { name: 'm' },
      selector: { matchLabels: { app: 'no-replay' } },
      indexer: { eventPort: 6100, replayPort: null },
    });
    expect((await client.get<Pool>(poolPath('no-replay'))).spec.indexer).toMatchObject({ eventPort: 6100, replayPort: null });
    const cm = await until(
      () =>
        client
          .get<V1ConfigMap>(resourcePath('v1', 'ConfigMap', NS, 'no-replay-router'))
          .catch((e: unknown) => (e instanceof KubeApiError && e.status === 404 ? undefined : Promise.reject(e))),
      { message: 'no-replay-router ConfigMap' },
    );
    expect(YAML.parse(cm.data!['indexer.yaml']!).zmq.discovery).toMatchObject({ port: 6100, replayPort: null });
  });

  it('rejects invalid pools and models at the API server with a message naming the field', async () => {
    const reject = async (p: Promise<unknown>) => {
      const err = await p.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(KubeApiError);
      expect((err as KubeApiError).status).toBe(422);
      return (err as KubeApiError).message;
    };
    expect(await reject(createPool('bad-util', { model: { name: 'm' }, modelServer: { image: 'i', gpuMemoryUtilization: 1.5 } }))).toMatch(
      /spec\.modelServer\.gpuMemoryUtilization: Invalid value: 1\.5: spec\.modelServer\.gpuMemoryUtilization in body should be less than or equal to 1/,
    );
    expect(await reject(createPool('bad-adopt', { model: { name: 'm' } }))).toContain('selector is required when modelServer is absent');
    expect(
      await reject(createPool('bad-gw', { model: { name: 'm' }, selector: { matchLabels: { a: 'b' } }, gateway: { envoyFilter: true } })),
    ).toContain('workloadSelector is required when envoyFilter is true');
    expect(
      await reject(
        createPool('bad-replay', {
          model: { name: 'm' },
          selector: { matchLabels: { a: 'b' } },
          indexer: { eventPort: 6000, replayPort: 6000 },
        }),
      ),
    ).toContain('replayPort must differ from eventPort');
    expect(
      await reject(createPool('bad-events', { model: { name: 'm' }, modelServer: { image: 'i' }, indexer: { eventPort: 8000 } })),
    ).toContain('indexer.eventPort and indexer.replayPort must differ from modelServer.port');
    expect(
      await reject(
        createPool('bad-mode', { model: { name: 'm' }, selector: { matchLabels: { a: 'b' } }, router: { failureMode: 'Maybe' } }),
      ),
    ).toMatch(/spec\.router\.failureMode: Unsupported value: "Maybe"/);
    // Cross-field rules are CEL in the CRD, reported at the field they name.
    expect(await reject(createPool('flat-selector', { model: { name: 'm' }, selector: { app: 'x' } }))).toMatch(
      /spec\.selector\.matchLabels: Required value/,
    );
    expect(
      await reject(createPool('both', { model: { name: 'm' }, selector: { matchLabels: { a: 'b' } }, poolRef: { name: 'gie' } })),
    ).toMatch(/spec\.poolRef: Invalid value: .*selector and poolRef are mutually exclusive/);
    expect(
      await reject(
        createPool('dup-ports', {
          model: { name: 'm' },
          selector: { matchLabels: { a: 'b' } },
          targetPorts: [{ number: 8000 }, { number: 8000 }],
        }),
      ),
    ).toMatch(/spec\.targetPorts: Invalid value: .*port numbers must be unique/);
    expect(await reject(createPool('ref-server', { modelServer: { image: 'i' }, poolRef: { name: 'gie' } }))).toMatch(
      /spec\.modelServer: Invalid value: .*modelServer cannot be used with poolRef/,
    );
    expect(await reject(createPool('no-model', { modelServer: { image: 'i' } }))).toMatch(
      /spec\.model: Invalid value: .*model is required unless poolRef is set/,
    );
    expect(await reject(createPool('ref-ports', { poolRef: { name: 'gie' }, targetPorts: [{ number: 8000 }] }))).toMatch(
      /spec\.targetPorts: Invalid value: .*targetPorts cannot be used with poolRef/,
    );
    expect(await reject(createPool('bad-seed', { model: { name: 'm' }, modelServer: { image: 'i', hashSeed: 'random' } }))).toMatch(
      /spec\.modelServer\.hashSeed/,
    );
    expect(
      await reject(createPool('bad-label', { model: { name: 'm' }, modelServer: { image: 'i' }, servingLabel: { value: 'no spaces' } })),
    ).toMatch(/spec\.servingLabel\.value/);
    // Fewer GPUs than tensor-parallel ranks is the operator's to refuse (no CEL rule: see ModelServerSpec), naming the field.
    await createPool('few-gpus', {
      model: { name: 'm' },
      modelServer: { image: 'i', tensorParallelSize: 4, resources: { limits: { 'nvidia.com/gpu': '2' } } },
    });
    const invalid = await until(
      async () => {
        const c = condition((await client.get<Pool>(poolPath('few-gpus'))).status, 'Degraded');
        return c?.reason === 'InvalidSpec' ? c : undefined;
      },
      { message: 'few-gpus Degraded=InvalidSpec' },
    );
    expect(invalid.message).toContain(
      'modelServer.tensorParallelSize: expected resources.limits["nvidia.com/gpu"] to be at least tensorParallelSize',
    );
    expect(
      await reject(
        createModel('bad-weights', { modelName: 'x', poolRef: { name: 'any' }, targetModels: [{ name: 'a', weight: 1 }, { name: 'b' }] }),
      ),
    ).toContain('weights must be set on all targetModels or on none');
    await createModel('immutable', { modelName: 'x', poolRef: { name: 'any' } });
    expect(await reject(mergePatch(modelPath('immutable'), { spec: { modelName: 'y' } }))).toContain('modelName is immutable');
    await client.delete(modelPath('immutable'));
  });

  it('rolls a spec change into the vLLM Deployment and records the new observedGeneration', async () => {
    await servedPool('update');
    await mergePatch(poolPath('update'), { spec: { modelServer: { blockSize: 32, hashSeed: '1234' } } });
    await until(
      async () => {
        const d = await get<V1Deployment>('apps/v1', 'Deployment', 'update-vllm');
        const c = d.spec!.template.spec!.containers[0]!;
        return c.args!.includes('--block-size=32') && c.env!.some((e) => e.name === 'PYTHONHASHSEED' && e.value === '1234');
      },
      { message: 'vLLM Deployment with --block-size=32' },
    );
    const cm = await get<V1ConfigMap>('v1', 'ConfigMap', 'update-router');
    expect(YAML.parse(cm.data!['indexer.yaml']!)).toMatchObject({ blockSize: 32, hashSeed: '1234' });
    await until(async () => (await client.get<Pool>(poolPath('update'))).status?.observedGeneration === 2, {
      message: 'observedGeneration 2',
    });
  });

  it('repairs drift: a deleted ConfigMap comes back and a hand-edited replica count is restored', async () => {
    await servedPool('drift');
    await until(() => exists('v1', 'ConfigMap', 'drift-router'), { message: 'ConfigMap' });
    await client.delete(resourcePath('v1', 'ConfigMap', NS, 'drift-router'));
    await until(() => exists('v1', 'ConfigMap', 'drift-router'), { message: 'ConfigMap recreated' });
    await mergePatch(resourcePath('apps/v1', 'Deployment', NS, 'drift-vllm'), { spec: { replicas: 7 } });
    await until(async () => (await get<V1Deployment>('apps/v1', 'Deployment', 'drift-vllm')).spec!.replicas === 2, {
      message: 'replicas restored to 2',
    });
  });

  it('adopts existing serving pods by selector and reflects them and their readiness in status within a second', async () => {
    await createPool('adopted', { model: { name: 'Qwen/Qwen3-8B' }, selector: { matchLabels: { app: 'byo-vllm' } } });
    await until(() => exists('apps/v1', 'Deployment', 'adopted-router'), { message: 'router for adopted pool' });
    expect(await exists('apps/v1', 'Deployment', 'adopted-vllm')).toBe(false);
    const pod = (name: string, labels: Record<string, string>) =>
      client.create<V1Pod>({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: NS, labels },
        spec: { containers: [{ name: 'vllm', image: 'vllm' }] },
      });
    const t0 = Date.now();
    await pod('byo-0', { app: 'byo-vllm', 'llm-d.ai/inferenceServing': 'true' });
    await pod('byo-unlabelled', { app: 'byo-vllm' });
    const status = await until(
      async () => {
        const s = (await client.get<Pool>(poolPath('adopted'))).status;
        return s?.endpoints?.length === 1 ? s : undefined;
      },
      { message: 'endpoint in status', timeoutMs: 1000, intervalMs: 20 },
    );
    const seenMs = Date.now() - t0;
    expect(status.endpoints).toEqual([{ pod: 'byo-0', address: '', ready: false }]);

    const t1 = Date.now();
    await client.request('PATCH', resourcePath('v1', 'Pod', NS, 'byo-0') + '/status', {
      body: { status: { podIP: '10.1.2.3', conditions: [{ type: 'Ready', status: 'True' }] } },
      contentType: 'application/strategic-merge-patch+json',
    });
    await until(async () => (await client.get<Pool>(poolPath('adopted'))).status?.readyReplicas === 1, {
      message: 'readyReplicas 1',
      timeoutMs: 1000,
      intervalMs: 20,
    });
    const readyMs = Date.now() - t1;
    // The router Deployment has no controller here; report it available the way kube-controller-manager would.
    await client.request('PATCH', resourcePath('apps/v1', 'Deployment', NS, 'adopted-router') + '/status', {
      body: { status: { observedGeneration: 1, replicas: 1, updatedReplicas: 1, readyReplicas: 1, availableReplicas: 1 } },
      contentType: 'application/merge-patch+json',
    });
    const ready = await until(
      async () => {
        const s = (await client.get<Pool>(poolPath('adopted'))).status as Status;
        return condition(s, 'Ready')?.status === 'True' ? s : undefined;
      },
      { message: 'Ready=True' },
    );
    expect(condition(ready, 'Progressing')).toMatchObject({ status: 'False', reason: 'RolledOut' });
    process.stdout.write(`pod -> status: listed in ${seenMs} ms, ready in ${readyMs} ms\n`);

    await client.delete(resourcePath('v1', 'Pod', NS, 'byo-0'));
    await until(async () => (await client.get<Pool>(poolPath('adopted'))).status?.endpoints?.length === 0, {
      message: 'endpoint removed',
      timeoutMs: 1000,
      intervalMs: 20,
    });
  });

  it('accepts the older of two InferenceModels claiming one modelName and reports the other, then hands over when it goes', async () => {
    await createPool('dup', { model: { name: 'm' }, selector: { matchLabels: { app: 'dup' } } });
    await createModel('chat-a', { modelName: 'chat', poolRef: { name: 'dup' } });
    await until(async () => condition((await client.get<Pool>(modelPath('chat-a'))).status, 'Accepted')?.status === 'True', {
      message: 'chat-a accepted',
    });
    await createModel('chat-b', { modelName: 'chat', poolRef: { name: 'dup' }, criticality: 'Critical' });
    const loser = await until(
      async () => {
        const c = condition((await client.get<Pool>(modelPath('chat-b'))).status, 'Accepted');
        return c?.status === 'False' ? c : undefined;
      },
      { message: 'chat-b rejected' },
    );
    expect(loser).toMatchObject({ reason: 'ModelNameInUse' });
    expect(loser.message).toContain('"chat-a"');
    const event = await until(
      async () => {
        const list = await client.list<{ type: string; reason: string; involvedObject: { name: string } }>(resourcePath('v1', 'Event', NS));
        return list.items.find((e) => e.involvedObject.name === 'chat-b' && e.reason === 'ModelNameInUse');
      },
      { message: 'ModelNameInUse Event' },
    );
    expect(event.type).toBe('Warning');
    const routerModels = async () => YAML.parse((await get<V1ConfigMap>('v1', 'ConfigMap', 'dup-router')).data!['router.yaml']!).models;
    await until(async () => (await routerModels()).length === 1, { message: 'one model in router.yaml' });
    expect((await routerModels())[0]).toMatchObject({ modelName: 'chat', priority: 0 });

    await client.delete(modelPath('chat-a'));
    await until(async () => condition((await client.get<Pool>(modelPath('chat-b'))).status, 'Accepted')?.status === 'True', {
      message: 'chat-b accepted',
    });
    // chat-b's deprecated criticality Critical reaches the router as GIE's priority 1.
    await until(async () => (await routerModels())[0]?.priority === 1, { message: 'router.yaml follows chat-b' });
  });

  it('reports a model whose pool does not exist as unresolved', async () => {
    await createModel('orphan', { modelName: 'o', poolRef: { name: 'nope' } });
    const c = await until(async () => condition((await client.get<Pool>(modelPath('orphan'))).status, 'ResolvedRefs'), {
      message: 'ResolvedRefs',
    });
    expect(c).toMatchObject({ status: 'False', reason: 'PoolNotFound' });
  });

  it('prunes the vLLM objects when a pool stops running model servers', async () => {
    await servedPool('prune');
    await client.request('PATCH', poolPath('prune'), {
      body: [
        { op: 'remove', path: '/spec/modelServer' },
        { op: 'add', path: '/spec/selector', value: { matchLabels: { app: 'external' } } },
      ],
      contentType: 'application/json-patch+json',
    });
    await until(async () => !(await exists('apps/v1', 'Deployment', 'prune-vllm')) && !(await exists('v1', 'Service', 'prune-vllm')), {
      message: 'vLLM objects pruned',
    });
    expect(await exists('apps/v1', 'Deployment', 'prune-router')).toBe(true);
  });

  it('adds --enable-lora and the adapter to the vLLM Deployment when an InferenceModel routes to an adapter, and drops them when it goes', async () => {
    await servedPool('lora');
    const args = async () => (await get<V1Deployment>('apps/v1', 'Deployment', 'lora-vllm')).spec!.template.spec!.containers[0]!.args!;
    expect(await args()).not.toContain('--enable-lora');
    await createModel('lora-sql', {
      modelName: 'sql',
      poolRef: { name: 'lora' },
      targetModels: [
        { name: 'meta-llama/Llama-3.1-8B-Instruct', weight: 1 },
        { name: 'sql-lora', weight: 1, source: 'org/sql-lora' },
      ],
    });
    await until(async () => (await args()).includes('--enable-lora'), { message: '--enable-lora in the vLLM Deployment' });
    const a = await args();
    expect(a.slice(a.indexOf('--enable-lora'))).toEqual(['--enable-lora', '--max-loras=1', '--lora-modules', 'sql-lora=org/sql-lora']);
    const cm = await get<V1ConfigMap>('v1', 'ConfigMap', 'lora-router');
    expect(YAML.parse(cm.data!['indexer.yaml']!).loras).toEqual({ 'sql-lora': 'org/sql-lora' });
    await client.delete(modelPath('lora-sql'));
    await until(async () => !(await args()).includes('--enable-lora'), { message: 'LoRA flags removed with the model' });
  });

  it('says Degraded while an optional API is missing, logging it once and watching nothing, and creates the object once its CRD appears', async () => {
    const gateway = {
      envoyFilter: true,
      workloadSelector: { istio: 'ingressgateway' },
      routeNames: ['gw'],
      backendRef: { name: 'gw-vllm', port: 8000 },
    };
    await createPool('gw', {
      model: { name: 'm' },
      selector: { matchLabels: { app: 'gw' } },
      router: { failureMode: 'FailOpen' },
      gateway,
    });
    const degraded = await until(
      async () => {
        const c = condition((await client.get<Pool>(poolPath('gw'))).status, 'Degraded');
        return c?.status === 'True' ? c : undefined;
      },
      { message: 'Degraded=True without Istio' },
    );
    expect(degraded).toMatchObject({ reason: 'MissingAPI' });
    expect(degraded.message).toContain('networking.istio.io/v1alpha3 EnvoyFilter');
    // Istio absent: one line per API, and no watch of EnvoyFilters failing in a loop.
    const logged = (pred: (r: Record<string, unknown>) => boolean) => logRecords.filter(pred).length;
    expect(
      logged(
        (r) =>
          r.msg === 'optional API is not served; pools that need it report it in their status until it is' &&
          r.api === 'networking.istio.io/v1alpha3 EnvoyFilter',
      ),
    ).toBe(1);
    expect(logged((r) => String(r.msg).startsWith('list/watch failed'))).toBe(0);

    await installCrd(client, openCrd('networking.istio.io', 'v1alpha3', 'EnvoyFilter', 'envoyfilters'));
    await installCrd(client, openCrd('networking.istio.io', 'v1', 'DestinationRule', 'destinationrules'));
    // The CRD watch asks discovery at once; the pools are reconciled when discovery lists the API.
    const ef = await until(() => get<{ spec: any }>('networking.istio.io/v1alpha3', 'EnvoyFilter', 'gw-ext-proc').catch(() => undefined), {
      message: 'EnvoyFilter',
      timeoutMs: 15_000,
    });
    expect(ef.spec.configPatches.length).toBeGreaterThan(0);
    expect(operator.optionalApis.isServed('networking.istio.io', 'v1alpha3', 'EnvoyFilter')).toBe(true);
    await until(async () => condition((await client.get<Pool>(poolPath('gw'))).status, 'Degraded')?.status === 'False', {
      message: 'Degraded=False',
      timeoutMs: 15_000,
    });
    expect(
      logged((r) => r.msg === 'optional API is served; starting what needs it' && r.api === 'networking.istio.io/v1alpha3 EnvoyFilter'),
    ).toBe(1);
  });

  it('emits the GIE InferencePool for a pool once that API is installed, owned by the pool', async () => {
    await createPool('gie-path', {
      model: { name: 'm' },
      selector: { matchLabels: { app: 'gie-path' } },
      router: { failureMode: 'FailOpen' },
    });
    await until(() => exists('apps/v1', 'Deployment', 'gie-path-router'), { message: 'gie-path router' });
    await ensureCrd(openCrd('inference.networking.k8s.io', 'v1', 'InferencePool', 'inferencepools'));
    const gie = await until(
      () =>
        client
          .get<KubernetesObject & { spec: any }>('/apis/inference.networking.k8s.io/v1/namespaces/ml/inferencepools/gie-path')
          .catch(() => undefined),
      {
        message: 'GIE InferencePool',
        timeoutMs: 15_000,
      },
    );
    expect(gie.spec.endpointPickerRef).toMatchObject({ name: 'gie-path-router', port: { number: 9002 }, failureMode: 'FailOpen' });
    // The garbage collector only watches kinds whose CRD appeared after it started from its next 30 s
    // rediscovery; what it will follow then is the controller reference.
    const pool = await client.get<Pool>(poolPath('gie-path'));
    expect(gie.metadata!.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'InferencePool', uid: pool.metadata!.uid, controller: true }),
    ]);
  });

  it("takes a poolRef pool's pods from the GIE InferencePool it names: waits while it is missing, then follows it with the router and indexer", async () => {
    await ensureCrd(openCrd('inference.networking.k8s.io', 'v1', 'InferencePool', 'inferencepools'));
    await createPool('rides', { poolRef: { name: 'gie-made' }, servingLabel: { key: 'llm-d.ai/inference-serving' } });
    const waiting = await until(
      async () => {
        const c = condition((await client.get<Pool>(poolPath('rides'))).status, 'Ready');
        return c?.reason === 'PoolRefNotFound' ? c : undefined;
      },
      { message: 'Ready=False PoolRefNotFound' },
    );
    expect(waiting.message).toContain('InferencePool "gie-made"');
    expect(await exists('apps/v1', 'Deployment', 'rides-router')).toBe(false);

    await client.create({
      apiVersion: 'inference.networking.k8s.io/v1',
      kind: 'InferencePool',
      metadata: { name: 'gie-made', namespace: NS },
      spec: {
        selector: { matchLabels: { app: 'gie-made' } },
        targetPorts: [{ number: 8000 }],
        endpointPickerRef: { name: 'rides-router', port: { number: 9002 } },
      },
    });
    await until(() => exists('apps/v1', 'Deployment', 'rides-router'), { message: 'router for the poolRef pool' });
    const router = (await get<V1Deployment>('apps/v1', 'Deployment', 'rides-router')).spec!.template.spec!.containers[0]!;
    expect(router.args).toEqual(
      expect.arrayContaining([
        '--pool-group=inference.networking.k8s.io',
        '--pool-name=gie-made',
        '--serving-label=llm-d.ai/inference-serving=true',
      ]),
    );
    const cm = await get<V1ConfigMap>('v1', 'ConfigMap', 'rides-router');
    expect(YAML.parse(cm.data!['indexer.yaml']!).zmq.discovery).toMatchObject({
      selector: { app: 'gie-made' },
      servingLabel: { key: 'llm-d.ai/inference-serving', value: 'true' },
    });
    // The pool's pods are the GIE pool's, counted by the pool's serving label.
    await client.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'gie-made-0', namespace: NS, labels: { app: 'gie-made', 'llm-d.ai/inference-serving': 'true' } },
      spec: { containers: [{ name: 'vllm', image: 'vllm' }] },
    });
    await until(async () => (await client.get<Pool>(poolPath('rides'))).status?.endpoints?.length === 1, {
      message: 'the GIE pool pod in status',
    });
    // It rides on the GIE pool it names rather than making its own.
    expect(
      await client.get('/apis/inference.networking.k8s.io/v1/namespaces/ml/inferencepools/rides').then(
        () => true,
        () => false,
      ),
    ).toBe(false);
  });

  it('lets the garbage collector delete everything a pool owned when the pool is deleted', async () => {
    expect(env.gc).toBe(true);
    await servedPool('gc');
    await until(() => exists('rbac.authorization.k8s.io/v1', 'RoleBinding', 'gc-router'), { message: 'gc RoleBinding' });
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
      await until(async () => !(await exists(apiVersion, kind, name)), {
        message: `GC of ${kind} ${name}`,
        timeoutMs: 10_000,
        intervalMs: 50,
      });
    }
    process.stdout.write(`garbage collection of a pool's objects took ${Date.now() - t0} ms\n`);
    // Foreground deletion keeps the pool until its children are gone; the operator must not recreate them.
    await createPool('fg', { model: { name: 'm' }, selector: { matchLabels: { app: 'fg' } } });
    await until(() => exists('apps/v1', 'Deployment', 'fg-router'), { message: 'fg router' });
    await client.delete(poolPath('fg'), undefined, 'Foreground');
    await until(async () => !(await exists(GV, 'InferencePool', 'fg')), {
      message: 'pool gone after its children (foreground)',
      timeoutMs: 15_000,
      intervalMs: 100,
    });
    expect(await exists('apps/v1', 'Deployment', 'fg-router')).toBe(false);
  });

  it('exposes reconcile counts, durations and queue depth on /metrics', async () => {
    await createPool('metrics', { model: { name: 'm' }, selector: { matchLabels: { app: 'metrics' } } });
    await until(() => exists('apps/v1', 'Deployment', 'metrics-router'), { message: 'metrics router' });
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(text).toMatch(/kvroute_operator_reconcile_total\{controller="inferencepool",result="success"\} [1-9]/);
    expect(text).toContain('kvroute_operator_reconcile_duration_seconds_bucket');
    expect(text).toContain('kvroute_operator_workqueue_depth');
  });
});
