// The operator's gateway wiring against a real kube-apiserver and etcd, run as the ServiceAccount bound
// to config/rbac's ClusterRole: the EnvoyFilter goes in the gateway's namespace (only one the operator's
// --gateway-namespaces allows), the pool holds a cleanup finalizer while it has a filter there, and the
// filter follows namespace switches, disablement and deletion (also when a namespace controller deletes
// the pool's namespace after the gateway's is gone); watches on namespaces and EnvoyFilters repair
// hand-made changes and place a late filter within a second. On the GIE path the pool gets an owned GIE
// InferencePool and the router DestinationRule; an object of a wanted name that another owner holds is
// named in a Conflict and never written over.

import { describe, it, expect, beforeAll, afterAll, jest } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import YAML from 'yaml';
import { createLogger } from '../src/common/log.ts';
import { createRegistry } from '../src/common/metrics.ts';
import { KubeApiError, resourcePath, type KubeClient } from '../src/common/kube/kube-client.ts';
import { Operator } from '../src/controllers/manager.ts';
import { until } from '../test/support/until.ts';
import { KUBE_BIN_DIR, kubeTestsEnabled, startKube, type KubeEnv } from './kube/cluster.ts';
import { createNamespace, installCrd, installKvrouteCrds, openCrd, serviceAccountKubeconfig } from './kube/fixtures.ts';

const GV = 'inference.kvroute.io/v1alpha1';
const EF = 'networking.istio.io/v1alpha3';
const GIE = 'inference.networking.k8s.io/v1';
const DR = 'networking.istio.io/v1';
/** The gateway namespaces the operator may write into (--gateway-namespaces); istio-system is left out on purpose. */
const GATEWAY_NAMESPACES = ['gw-one', 'gw-a', 'gw-b', 'gw-off', 'gw-shared', 'gw-later', 'gw-hand', 'gw-taken', 'gw-doomed'];
const FINALIZER = 'inference.kvroute.io/gateway-cleanup';
const ROLE = fileURLToPath(new URL('../config/rbac/role.yaml', import.meta.url));
const describeKube = kubeTestsEnabled() ? describe : describe.skip;
jest.setTimeout(60_000);

type Obj = KubernetesObject & {
  spec?: any;
  status?: { conditions?: { type: string; status: string; reason: string; message: string }[] };
  metadata: NonNullable<KubernetesObject['metadata']> & { managedFields?: { manager: string; operation: string; fieldsV1?: any }[] };
};

describeKube('operator gateway wiring across namespaces', () => {
  let env: KubeEnv;
  let client: KubeClient;
  let operator: Operator | undefined;
  let namespaceController: ChildProcess | undefined;
  let operatorLog = '';

  const poolPath = (ns: string, name: string) => resourcePath(GV, 'InferencePool', ns, name);
  const filterPath = (ns: string, name: string) => resourcePath(EF, 'EnvoyFilter', ns, name);
  const getOrUndefined = <T>(p: string) =>
    client.get<T>(p).catch((e: unknown) => (e instanceof KubeApiError && e.status === 404 ? undefined : Promise.reject(e)));
  const gone = async (p: string) => (await getOrUndefined(p)) === undefined;
  const finalizersOf = async (ns: string, name: string) => (await client.get<Obj>(poolPath(ns, name))).metadata.finalizers ?? [];
  const degraded = async (ns: string, name: string) =>
    (await client.get<Obj>(poolPath(ns, name))).status?.conditions?.find((c) => c.type === 'Degraded');
  const mergePatch = (p: string, body: unknown) => client.request('PATCH', p, { body, contentType: 'application/merge-patch+json' });
  const createPool = (ns: string, name: string, gateway: Record<string, unknown>) =>
    client.create<Obj>({
      apiVersion: GV,
      kind: 'InferencePool',
      metadata: { name, namespace: ns },
      spec: {
        model: { name: 'm' },
        selector: { matchLabels: { app: name } },
        gateway: {
          envoyFilter: true,
          workloadSelector: { istio: 'ingressgateway' },
          routeNames: [name],
          backendRef: { name, port: 8000 },
          ...gateway,
        },
      },
    });

  /** Runs the operator with exactly the permissions config/rbac grants its ServiceAccount. */
  async function operatorKubeConfig(): Promise<KubeConfig> {
    await createNamespace(client, 'kvroute-system');
    await client.create({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'kvroute-operator', namespace: 'kvroute-system' } });
    const role = YAML.parse(fs.readFileSync(ROLE, 'utf8'));
    await client.request('POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', { body: role });
    await client.request('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      body: {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: 'kvroute-operator' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name },
        subjects: [{ kind: 'ServiceAccount', name: 'kvroute-operator', namespace: 'kvroute-system' }],
      },
    });
    return (await serviceAccountKubeconfig(env, 'kvroute-system', 'kvroute-operator', 'operator.kubeconfig')).kubeConfig;
  }

  beforeAll(async () => {
    env = await startKube();
    client = env.client;
    await installKvrouteCrds(client);
    await installCrd(client, openCrd('networking.istio.io', 'v1alpha3', 'EnvoyFilter', 'envoyfilters'));
    await installCrd(client, openCrd('networking.istio.io', 'v1', 'DestinationRule', 'destinationrules'));
    await installCrd(client, openCrd('inference.networking.k8s.io', 'v1', 'InferencePool', 'inferencepools'));
    await createNamespace(client, 'apps');
    const kubeConfig = await operatorKubeConfig();
    operator = new Operator({
      kubeConfig,
      leaderElect: false,
      leaseNamespace: 'kvroute-system',
      defaultImage: 'kvroute:e2e',
      clusterDomain: 'cluster.local',
      gatewayNamespaces: GATEWAY_NAMESPACES,
      resyncMs: 60_000,
      log: createLogger({ level: 'info', component: 'operator', write: (l) => (operatorLog += l + '\n') }),
      registry: createRegistry(),
    });
    await operator.start();
  }, 120_000);

  afterAll(async () => {
    await operator?.stop();
    if (namespaceController && namespaceController.exitCode === null) {
      const exited = new Promise((r) => namespaceController!.once('exit', r));
      namespaceController.kill('SIGTERM');
      await exited;
    }
    await env?.stop();
    // RBAC denials name the user; a namespace being terminated also answers 403, which is not a missing permission.
    expect(operatorLog).not.toMatch(/forbidden: User/);
  }, 60_000);

  it('creates the filter in the gateway namespace with a finalizer, and deleting the pool removes both', async () => {
    await createNamespace(client, 'gw-one');
    const pool = await createPool('apps', 'one', { namespace: 'gw-one' });
    const filter = await until(() => getOrUndefined<Obj>(filterPath('gw-one', 'apps-one-ext-proc')), { message: 'EnvoyFilter in gw-one' });
    expect(filter.metadata.labels).toMatchObject({
      'inference.kvroute.io/pool-namespace': 'apps',
      'inference.kvroute.io/pool-name': 'one',
    });
    expect(filter.metadata.ownerReferences).toBeUndefined();
    expect(filter.spec.workloadSelector).toEqual({ labels: { istio: 'ingressgateway' } });
    expect(filter.spec.configPatches[0].patch.value.typed_config.grpc_service.envoy_grpc.cluster_name).toBe(
      'outbound|9002||one-router.apps.svc.cluster.local',
    );
    expect(await gone(filterPath('apps', 'one-ext-proc'))).toBe(true);

    const live = await client.get<Obj>(poolPath('apps', 'one'));
    expect(live.metadata.finalizers).toEqual([FINALIZER]);
    // Server-side applied: the operator's field manager owns its one finalizer entry and nothing else.
    const mine = live.metadata.managedFields!.filter(
      (f) => f.manager === 'kvroute-operator' && f.operation === 'Apply' && !('subresource' in f),
    );
    expect(mine).toHaveLength(1);
    expect(mine[0]!.fieldsV1).toEqual({ 'f:metadata': { 'f:finalizers': { [`v:"${FINALIZER}"`]: {} } } });

    const t0 = Date.now();
    await client.delete(poolPath('apps', 'one'), pool.metadata.uid);
    await until(() => gone(filterPath('gw-one', 'apps-one-ext-proc')), {
      message: 'EnvoyFilter deleted with the pool',
      timeoutMs: 10_000,
      intervalMs: 20,
    });
    await until(() => gone(poolPath('apps', 'one')), { message: 'pool released by its finalizer', timeoutMs: 10_000, intervalMs: 20 });
    process.stdout.write(`pool delete -> cross-namespace EnvoyFilter deleted and pool released in ${Date.now() - t0} ms\n`);
  });

  it('moves the filter when the gateway namespace changes and drops the finalizer when it comes back beside the pool', async () => {
    await createNamespace(client, 'gw-a');
    await createNamespace(client, 'gw-b');
    await createPool('apps', 'move', { namespace: 'gw-a' });
    await until(() => getOrUndefined(filterPath('gw-a', 'apps-move-ext-proc')), { message: 'EnvoyFilter in gw-a' });

    const t0 = Date.now();
    await mergePatch(poolPath('apps', 'move'), { spec: { gateway: { namespace: 'gw-b' } } });
    await until(() => getOrUndefined(filterPath('gw-b', 'apps-move-ext-proc')), {
      message: 'EnvoyFilter in gw-b',
      timeoutMs: 10_000,
      intervalMs: 20,
    });
    const placedMs = Date.now() - t0;
    await until(() => gone(filterPath('gw-a', 'apps-move-ext-proc')), {
      message: 'old EnvoyFilter in gw-a deleted',
      timeoutMs: 10_000,
      intervalMs: 20,
    });
    process.stdout.write(`gateway namespace switch: new EnvoyFilter in ${placedMs} ms, old one deleted in ${Date.now() - t0} ms\n`);
    expect(await finalizersOf('apps', 'move')).toEqual([FINALIZER]);

    await mergePatch(poolPath('apps', 'move'), { spec: { gateway: { namespace: null } } });
    const local = await until(() => getOrUndefined<Obj>(filterPath('apps', 'move-ext-proc')), { message: 'EnvoyFilter beside the pool' });
    const pool = await client.get<Obj>(poolPath('apps', 'move'));
    expect(local.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'InferencePool', uid: pool.metadata.uid, controller: true }),
    ]);
    await until(() => gone(filterPath('gw-b', 'apps-move-ext-proc')), { message: 'EnvoyFilter in gw-b deleted' });
    await until(async () => (await finalizersOf('apps', 'move')).length === 0, {
      message: 'finalizer released once no filter is outside the pool namespace',
    });
  });

  it('removes the filter and the finalizer when the gateway wiring is switched off, keeping finalizers others own', async () => {
    await createNamespace(client, 'gw-off');
    await createPool('apps', 'off', { namespace: 'gw-off' });
    await until(() => getOrUndefined(filterPath('gw-off', 'apps-off-ext-proc')), { message: 'EnvoyFilter in gw-off' });
    // Another manager (a GitOps tool, say) holds its own finalizer on the same list.
    await client.apply(
      { apiVersion: GV, kind: 'InferencePool', metadata: { name: 'off', namespace: 'apps', finalizers: ['example.com/keep'] } },
      { fieldManager: 'gitops' },
    );
    await until(async () => (await finalizersOf('apps', 'off')).length === 2, { message: 'both finalizers' });

    await mergePatch(poolPath('apps', 'off'), { spec: { gateway: { envoyFilter: false } } });
    await until(() => gone(filterPath('gw-off', 'apps-off-ext-proc')), { message: 'EnvoyFilter deleted when disabled' });
    await until(async () => (await finalizersOf('apps', 'off')).join() === 'example.com/keep', {
      message: 'only the operator finalizer removed',
    });
    await client.apply({ apiVersion: GV, kind: 'InferencePool', metadata: { name: 'off', namespace: 'apps' } }, { fieldManager: 'gitops' });
  });

  it('releases its finalizer on deletion even when another manager also wrote that entry', async () => {
    await createNamespace(client, 'gw-shared');
    const pool = await createPool('apps', 'shared', { namespace: 'gw-shared' });
    await until(async () => (await finalizersOf('apps', 'shared')).includes(FINALIZER), { message: 'finalizer' });
    // Another applier (a restore, a manifest that copied live metadata) co-owns the same entry, so releasing ours alone would keep it.
    await client.apply(
      { apiVersion: GV, kind: 'InferencePool', metadata: { name: 'shared', namespace: 'apps', finalizers: [FINALIZER] } },
      { fieldManager: 'restore' },
    );
    const owners = (await client.get<Obj>(poolPath('apps', 'shared'))).metadata.managedFields!.filter((f) =>
      JSON.stringify(f.fieldsV1 ?? {}).includes(FINALIZER),
    );
    expect(owners.map((f) => f.manager).sort()).toEqual(['kvroute-operator', 'restore']);
    await client.delete(poolPath('apps', 'shared'), pool.metadata.uid);
    await until(() => gone(filterPath('gw-shared', 'apps-shared-ext-proc')), { message: 'EnvoyFilter deleted with the pool' });
    await until(() => gone(poolPath('apps', 'shared')), { message: 'pool released' });
  });

  it('says Degraded with GatewayNamespaceNotFound while the gateway namespace is missing, and places the filter once it exists', async () => {
    await createPool('apps', 'early', { namespace: 'gw-later' });
    const c = await until(
      async () => {
        const d = await degraded('apps', 'early');
        return d?.status === 'True' ? d : undefined;
      },
      { message: 'Degraded=True' },
    );
    expect(c).toMatchObject({ reason: 'GatewayNamespaceNotFound' });
    expect(c.message).toContain('"gw-later"');
    expect(await finalizersOf('apps', 'early')).toEqual([]);

    const t0 = Date.now();
    await createNamespace(client, 'gw-later');
    await until(() => getOrUndefined(filterPath('gw-later', 'apps-early-ext-proc')), {
      message: 'EnvoyFilter within a second of gw-later existing',
      timeoutMs: 1_000,
      intervalMs: 20,
    });
    await until(async () => (await degraded('apps', 'early'))?.status === 'False', {
      message: 'Degraded=False within a second',
      timeoutMs: 1_000 - (Date.now() - t0),
      intervalMs: 20,
    });
    process.stdout.write(`gateway namespace created -> EnvoyFilter placed and Degraded cleared in ${Date.now() - t0} ms\n`);
    expect(await finalizersOf('apps', 'early')).toEqual([FINALIZER]);
  });

  it('recreates a hand-deleted EnvoyFilter and reverts a hand edit within a second', async () => {
    await createNamespace(client, 'gw-hand');
    await createPool('apps', 'hand', { namespace: 'gw-hand' });
    const first = await until(() => getOrUndefined<Obj>(filterPath('gw-hand', 'apps-hand-ext-proc')), {
      message: 'EnvoyFilter in gw-hand',
    });

    let t0 = Date.now();
    await client.delete(filterPath('gw-hand', 'apps-hand-ext-proc'));
    const back = await until(
      async () => {
        const f = await getOrUndefined<Obj>(filterPath('gw-hand', 'apps-hand-ext-proc'));
        return f && f.metadata.uid !== first.metadata.uid ? f : undefined;
      },
      { message: 'EnvoyFilter recreated within a second', timeoutMs: 1_000, intervalMs: 20 },
    );
    process.stdout.write(`hand-deleted EnvoyFilter recreated in ${Date.now() - t0} ms\n`);
    expect(back.spec.workloadSelector).toEqual({ labels: { istio: 'ingressgateway' } });

    t0 = Date.now();
    await mergePatch(filterPath('gw-hand', 'apps-hand-ext-proc'), { spec: { workloadSelector: { labels: { istio: 'by-hand' } } } });
    await until(
      async () => {
        const f = await client.get<Obj>(filterPath('gw-hand', 'apps-hand-ext-proc'));
        return f.spec.workloadSelector.labels.istio === 'ingressgateway';
      },
      { message: 'hand edit reverted within a second', timeoutMs: 1_000, intervalMs: 20 },
    );
    process.stdout.write(`hand-edited EnvoyFilter reverted in ${Date.now() - t0} ms\n`);
  });

  it("stops applying a pool's objects once its namespace is terminating, instead of retrying refused creates", async () => {
    await createNamespace(client, 'ending');
    // A finalizer someone else holds keeps the pool (and so the namespace) around while it terminates.
    await client.create({
      apiVersion: GV,
      kind: 'InferencePool',
      metadata: { name: 'stay', namespace: 'ending', finalizers: ['example.com/hold'] },
      spec: { model: { name: 'm' }, selector: { matchLabels: { app: 'stay' } } },
    });
    const routerPath = resourcePath('apps/v1', 'Deployment', 'ending', 'stay-router');
    await until(() => getOrUndefined(routerPath), { message: 'router Deployment' });
    const skips = () =>
      operatorLog.split('\n').filter((l) => l.includes('pool namespace is terminating') && l.includes('ending/stay')).length;

    await client.delete(resourcePath('v1', 'Namespace', undefined, 'ending'));
    await until(() => skips() > 0, { message: 'operator notices the namespace is terminating', timeoutMs: 2_000, intervalMs: 20 });
    // A deleted child would normally be recreated at once; in a terminating namespace that create is refused.
    const before = skips();
    const logFrom = operatorLog.length;
    if (!(await gone(routerPath))) await client.delete(routerPath);
    await until(() => skips() > before, { message: 'reconcile after the router Deployment went', timeoutMs: 2_000, intervalMs: 20 });
    expect(await gone(routerPath)).toBe(true);
    expect(operatorLog.slice(logFrom)).not.toMatch(/because it is being terminated/);
    await mergePatch(poolPath('ending', 'stay'), { metadata: { finalizers: null } });
  });

  it("never writes over an EnvoyFilter of the same name that is not the pool's: Conflict names it", async () => {
    await createNamespace(client, 'gw-taken');
    await client.create({
      apiVersion: EF,
      kind: 'EnvoyFilter',
      metadata: { name: 'apps-taken-ext-proc', namespace: 'gw-taken' },
      spec: { hand: 'written' },
    });
    await createPool('apps', 'taken', { namespace: 'gw-taken' });
    const c = await until(
      async () => {
        const d = await degraded('apps', 'taken');
        return d?.status === 'True' ? d : undefined;
      },
      { message: 'Degraded=True' },
    );
    expect(c).toMatchObject({ reason: 'Conflict' });
    expect(c.message).toContain('EnvoyFilter gw-taken/apps-taken-ext-proc already exists and is not owned by this pool');
    expect((await client.get<Obj>(filterPath('gw-taken', 'apps-taken-ext-proc'))).spec).toEqual({ hand: 'written' });
    expect(await finalizersOf('apps', 'taken')).toEqual([]);
  });

  it("writes nothing into a gateway namespace outside --gateway-namespaces, such as Istio's root namespace: Degraded NotAllowed", async () => {
    await createNamespace(client, 'istio-system');
    await createPool('apps', 'intruder', { namespace: 'istio-system' });
    const c = await until(
      async () => {
        const d = await degraded('apps', 'intruder');
        return d?.status === 'True' ? d : undefined;
      },
      { message: 'Degraded=True' },
    );
    expect(c).toMatchObject({ reason: 'NotAllowed' });
    expect(c.message).toContain('"istio-system"');
    expect((await client.list(`/apis/${EF}/namespaces/istio-system/envoyfilters`)).items).toEqual([]);
    expect(await finalizersOf('apps', 'intruder')).toEqual([]);
    // The pool's own objects are applied all the same.
    await until(() => getOrUndefined(resourcePath('apps/v1', 'Deployment', 'apps', 'intruder-router')), { message: 'router Deployment' });
  });

  it('gives a pool on the GIE path an owned GIE InferencePool and the router DestinationRule, and no EnvoyFilter', async () => {
    const pool = await client.create<Obj>({
      apiVersion: GV,
      kind: 'InferencePool',
      metadata: { name: 'gie', namespace: 'apps' },
      spec: { model: { name: 'm' }, selector: { matchLabels: { app: 'gie' } }, router: { failureMode: 'FailOpen' } },
    });
    const gie = await until(() => getOrUndefined<Obj>(resourcePath(GIE, 'InferencePool', 'apps', 'gie')), { message: 'GIE InferencePool' });
    expect(gie.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'InferencePool', uid: pool.metadata.uid, controller: true }),
    ]);
    expect(gie.spec).toEqual({
      selector: { matchLabels: { app: 'gie', 'llm-d.ai/inferenceServing': 'true' } },
      targetPorts: [{ number: 8000 }],
      endpointPickerRef: { kind: 'Service', name: 'gie-router', port: { number: 9002 }, failureMode: 'FailOpen' },
    });
    const dr = await until(() => getOrUndefined<Obj>(resourcePath(DR, 'DestinationRule', 'apps', 'gie-router')), {
      message: 'router DestinationRule',
    });
    expect(dr.spec).toEqual({
      host: 'gie-router.apps.svc.cluster.local',
      trafficPolicy: { portLevelSettings: [{ port: { number: 9002 }, tls: { mode: 'SIMPLE', insecureSkipVerify: true } }] },
    });
    expect(await gone(filterPath('apps', 'gie-ext-proc'))).toBe(true);
  });

  it('never takes over a GIE InferencePool of the same name that someone else made: Conflict names it', async () => {
    const theirs = {
      selector: { matchLabels: { app: 'theirs' } },
      targetPorts: [{ number: 9000 }],
      endpointPickerRef: { name: 'their-epp', port: { number: 9002 } },
    };
    await client.create({ apiVersion: GIE, kind: 'InferencePool', metadata: { name: 'claimed', namespace: 'apps' }, spec: theirs });
    await client.create({
      apiVersion: GV,
      kind: 'InferencePool',
      metadata: { name: 'claimed', namespace: 'apps' },
      spec: { model: { name: 'm' }, selector: { matchLabels: { app: 'claimed' } } },
    });
    const c = await until(
      async () => {
        const d = await degraded('apps', 'claimed');
        return d?.status === 'True' ? d : undefined;
      },
      { message: 'Degraded=True' },
    );
    expect(c).toMatchObject({ reason: 'Conflict' });
    expect(c.message).toContain('InferencePool apps/claimed already exists and is not owned by this pool');
    const live = await client.get<Obj>(resourcePath(GIE, 'InferencePool', 'apps', 'claimed'));
    expect(live.spec).toEqual(theirs);
    expect(live.metadata.ownerReferences).toBeUndefined();
    // The pool's other objects are applied.
    await until(() => getOrUndefined(resourcePath('v1', 'Service', 'apps', 'claimed-router')), { message: 'router Service' });
  });

  it('lets the namespace controller delete a pool namespace after the gateway namespace is gone', async () => {
    // kube-controller-manager with only the namespace controller: it deletes a namespace's contents, then the namespace.
    namespaceController = spawn(
      path.join(KUBE_BIN_DIR, 'kube-controller-manager'),
      [`--kubeconfig=${env.kubeconfigPath}`, '--controllers=namespace', '--leader-elect=false', '--secure-port=0', '--v=1'],
      {
        stdio: [
          'ignore',
          fs.openSync(path.join(env.dir, 'namespace-controller.log'), 'w'),
          fs.openSync(path.join(env.dir, 'namespace-controller.err'), 'w'),
        ],
      },
    );
    await createNamespace(client, 'team');
    await createNamespace(client, 'gw-doomed');
    await createPool('team', 'doomed', { namespace: 'gw-doomed' });
    await until(() => getOrUndefined(filterPath('gw-doomed', 'team-doomed-ext-proc')), { message: 'EnvoyFilter in gw-doomed' });
    await until(async () => (await finalizersOf('team', 'doomed')).includes(FINALIZER), { message: 'finalizer' });

    await client.delete(resourcePath('v1', 'Namespace', undefined, 'gw-doomed'));
    await until(() => gone(resourcePath('v1', 'Namespace', undefined, 'gw-doomed')), {
      message: 'gateway namespace deleted',
      timeoutMs: 45_000,
      intervalMs: 250,
    });
    await client.delete(resourcePath('v1', 'Namespace', undefined, 'team'));
    await until(() => gone(resourcePath('v1', 'Namespace', undefined, 'team')), {
      message: 'pool namespace deleted, not stuck on the finalizer',
      timeoutMs: 45_000,
      intervalMs: 250,
    });
  }, 120_000);
});
