// The operator's part of the chaos suite (issue 10): a real kube-apiserver + etcd and `kvroute operator`
// processes under three faults, one at a time: the API server killed and restarted (CRs changed right
// after), watches expiring with 410 Gone (etcd compacted under an API server that serves watches from
// etcd and closes them every few seconds), and the leader of two replicas SIGKILLed. For each: the time
// until every pool's desired objects are back, objects lost, duplicated, orphaned or recreated, and the
// informers' re-lists; for the failover, the time until the other replica holds the Lease.
// Imported by bench/chaos.ts and e2e/chaos/operator.test.ts; `node bench/chaos/operator.ts [--quick]`
// runs it alone and prints the report as JSON on stdout (progress on stderr).

import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { KubernetesObject } from '@kubernetes/client-node';
import YAML from 'yaml';
import { InferencePool } from '../../src/api/inference-pool.ts';
import { isNotFound, resourcePath, type KubeClient } from '../../src/common/kube/kube-client.ts';
import { MANAGED_BY, MANAGED_BY_LABEL } from '../../src/controllers/objects.ts';
import { desiredPoolObjects } from '../../src/controllers/pool/desired.ts';
import { kubeBinariesAvailable, startKube, type KubeEnv } from '../../e2e/kube/cluster.ts';
import { createNamespace, installKvrouteCrds } from '../../e2e/kube/fixtures.ts';
import { portOf, spawnKvroute, type KvrouteProcess, type LogRecord } from '../../test/support/kvroute.ts';
import { until } from '../../test/support/until.ts';

const GV = 'inference.kvroute.io/v1alpha1';
/** The kinds a pool owns in a cluster without Istio or GIE (what desiredPoolObjects renders there). */
const OWNED_KINDS = [
  ['apps/v1', 'Deployment'],
  ['v1', 'Service'],
  ['v1', 'ConfigMap'],
  ['v1', 'ServiceAccount'],
  ['rbac.authorization.k8s.io/v1', 'Role'],
  ['rbac.authorization.k8s.io/v1', 'RoleBinding'],
  ['networking.k8s.io/v1', 'NetworkPolicy'],
] as const;
/** The lease settings `kvroute operator` and the Helm chart ship with (src/cli/operator.ts). */
const SHIPPED_LEASE: LeaseSettings = { durationMs: 10_000, renewDeadlineMs: 7_000, retryPeriodMs: 1_500 };

export interface LeaseSettings {
  durationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

/** What a snapshot of the owned objects says against what the pools want. Lists hold "namespace/Kind/name". */
export interface ObjectAudit {
  /** Objects the pools want (desiredPoolObjects over the live pools). */
  desired: number;
  /** Managed objects present. */
  present: number;
  /** Wanted and missing (or present but owned by something else). */
  lost: string[];
  /** Owned by a live pool that does not want them: a second copy, or one left behind. */
  duplicated: string[];
  /** Managed objects whose owner pool no longer exists. */
  orphaned: string[];
  /** Present before and after the fault with a different uid, though nobody deleted them on purpose. */
  recreated: string[];
}

export interface InformerCounts {
  /** LISTs after the first, summed over informers (kvroute_operator_informer_lists_total{kind="relist"}). */
  relists: number;
  /** Informers that re-listed, by name. */
  relistedInformers: string[];
  /** list/watch restarts after failures (kvroute_operator_informer_restarts_total). */
  restarts: number;
  /** "re-listing" lines in the operator's log. */
  relistLogLines: number;
}

export interface ApiServerRestartResult {
  /** How long the API server was down on purpose before it was started again. */
  downMs: number;
  /** From the SIGKILL to the restarted API server answering /readyz. */
  unavailableMs: number;
  /** CR changes made right after the restart (and one owned object deleted by hand). */
  changes: string[];
  /** From /readyz of the restarted API server until every desired object is back and current. */
  convergeMs: number;
  /** The same, from the SIGKILL. */
  convergeFromKillMs: number;
  informers: InformerCounts;
  operatorSurvived: boolean;
  audit: ObjectAudit;
}

export interface WatchExpiryResult {
  /** Flags the API server was restarted with so that compaction reaches the operator's watches. */
  apiServerFlags: string[];
  /** etcd revision compacted to (everything older is gone: a watch from there gets 410 Gone). */
  compactedRevision: number;
  changes: string[];
  /** From the compaction until every informer of the operator's own kinds has re-listed. */
  relistedMs: number;
  /** From the compaction until every desired object is current. */
  convergeMs: number;
  /** After the re-lists, a further change: from it until converged (the watches resumed after the re-list). */
  resumeConvergeMs: number;
  informers: InformerCounts;
  operatorSurvived: boolean;
  audit: ObjectAudit;
}

export interface LeaderFailoverRun {
  lease: LeaseSettings;
  /** From the leader's SIGKILL until the other replica reports itself leader (kvroute_operator_leader 1). */
  failoverMs: number;
  /** From the SIGKILL until the Lease names the other replica. */
  leaseAcquiredMs: number;
  /** From the SIGKILL until a change made right after it is reconciled (by the new leader). */
  reconcileAfterKillMs: number;
  /**
   * Lower bound the dead leader's lease puts on failoverMs: its duration minus two retry periods (the kill
   * lands up to one renewal cycle, a retry period plus the request, after the last renewal the follower saw).
   */
  leaseExpiryBoundMs: number;
  /** Owned objects whose resourceVersion changed though their pool did not (no-op re-applies should not write). */
  rewritten: number;
  leaseTransitions: number;
  audit: ObjectAudit;
}

export interface LeaderFailoverResult {
  settings: string;
  lease: LeaseSettings;
  runs: LeaderFailoverRun[];
  failoverMs: { min: number; max: number; mean: number };
}

export interface OperatorChaosReport {
  quick: boolean;
  kubeVersion: string;
  pools: number;
  models: number;
  loadAverage: { start: number[]; end: number[] };
  initialConvergeMs: number;
  apiServerRestart: ApiServerRestartResult;
  watchExpiry: WatchExpiryResult;
  leaderFailover: LeaderFailoverResult[];
  targets: {
    /** Every leader failover under 15 s (issue 10). */
    failoverUnder15s: boolean;
    /** No object lost, duplicated, orphaned or recreated in any scenario. */
    noDuplicatedOrLost: boolean;
    /** The operator converged after every fault and its processes survived (but the killed leader). */
    convergedAfterEveryFault: boolean;
  };
}

export interface OperatorChaosOptions {
  quick: boolean;
  progress: (line: string) => void;
}

type Obj = KubernetesObject & { spec?: Record<string, unknown>; status?: { observedGeneration?: number } };
type Owned = KubernetesObject & { data?: Record<string, string>; spec?: { replicas?: number } };

const since = (t0: number) => Math.round(performance.now() - t0);
const load = () => os.loadavg().map((l) => Math.round(l * 100) / 100);

/** The cluster as the operator should leave it: pools, models and owned objects read fresh from the API server. */
class Checker {
  private readonly client: KubeClient;
  private readonly namespaces: readonly string[];

  constructor(client: KubeClient, namespaces: readonly string[]) {
    this.client = client;
    this.namespaces = namespaces;
  }

  private async listAll<T extends KubernetesObject>(apiVersion: string, kind: string, labelSelector?: string): Promise<T[]> {
    const out: T[] = [];
    for (const ns of this.namespaces)
      out.push(...(await this.client.list<T>(resourcePath(apiVersion, kind, ns), labelSelector ? { labelSelector } : {})).items);
    return out;
  }

  /** Managed objects by "namespace/Kind/name". */
  async owned(): Promise<Map<string, Owned>> {
    const map = new Map<string, Owned>();
    for (const [apiVersion, kind] of OWNED_KINDS) {
      for (const o of await this.listAll<Owned>(apiVersion, kind, `${MANAGED_BY_LABEL}=${MANAGED_BY}`))
        map.set(`${o.metadata!.namespace}/${kind}/${o.metadata!.name}`, o);
    }
    return map;
  }

  /**
   * Whether every pool and model is reconciled at its current generation and every pool's desired objects
   * exist, owned by it, with the replicas and models its spec names; with the audit either way.
   */
  async check(
    before?: Map<string, Owned>,
    deletedOnPurpose: ReadonlySet<string> = new Set(),
  ): Promise<{ ok: boolean; why: string[]; audit: ObjectAudit }> {
    const why: string[] = [];
    const pools = await this.listAll<Obj>(GV, 'InferencePool');
    const models = await this.listAll<Obj>(GV, 'InferenceModel');
    const owned = await this.owned();
    const poolByUid = new Map(pools.map((p) => [p.metadata!.uid!, p]));
    const wanted = new Set<string>();
    const lost: string[] = [];
    for (const raw of pools) {
      const ns = raw.metadata!.namespace!;
      const name = raw.metadata!.name!;
      if ((raw.status?.observedGeneration ?? 0) < (raw.metadata!.generation ?? 0))
        why.push(`pool ${ns}/${name} status behind its generation`);
      const pool = InferencePool.parse(raw);
      const desired = desiredPoolObjects(pool, [], {
        defaultImage: 'unused',
        clusterDomain: 'cluster.local',
        apis: { isServed: () => false },
      });
      for (const d of desired.apply) {
        if (!OWNED_KINDS.some(([, k]) => k === d.kind)) continue;
        const key = `${ns}/${d.kind}/${d.metadata.name}`;
        wanted.add(key);
        const live = owned.get(key);
        if (!live || !live.metadata?.ownerReferences?.some((r) => r.uid === raw.metadata!.uid)) lost.push(key);
      }
      const servedModels = models
        .filter((m) => m.metadata!.namespace === ns && (m.spec?.poolRef as { name?: string } | undefined)?.name === name)
        .map((m) => String(m.spec?.modelName))
        .sort();
      const config = owned.get(`${ns}/ConfigMap/${name}-router`);
      if (config) {
        const routerYaml = YAML.parse(config.data?.['router.yaml'] ?? '{}') as { models?: { modelName: string }[] };
        const inConfig = (routerYaml.models ?? []).map((m) => m.modelName).sort();
        if (inConfig.join(',') !== servedModels.join(','))
          why.push(`${ns}/${name}-router config serves [${inConfig}] not [${servedModels}]`);
      }
      const replicas = (pool.spec as { modelServer?: { replicas?: number } }).modelServer?.replicas;
      const vllm = owned.get(`${ns}/Deployment/${name}-vllm`);
      if (replicas !== undefined && vllm && vllm.spec?.replicas !== replicas)
        why.push(`${ns}/${name}-vllm has ${vllm.spec?.replicas} replicas, pool wants ${replicas}`);
    }
    for (const m of models) {
      if ((m.status?.observedGeneration ?? 0) < (m.metadata!.generation ?? 0))
        why.push(`model ${m.metadata!.namespace}/${m.metadata!.name} status behind its generation`);
    }
    const duplicated: string[] = [];
    const orphaned: string[] = [];
    for (const [key, o] of owned) {
      const owner = o.metadata?.ownerReferences?.find((r) => r.kind === 'InferencePool');
      if (!owner || !poolByUid.has(owner.uid)) orphaned.push(key);
      else if (!wanted.has(key)) duplicated.push(key);
    }
    const recreated: string[] = [];
    for (const [key, o] of before ?? []) {
      const now = owned.get(key);
      if (now && now.metadata?.uid !== o.metadata?.uid && !deletedOnPurpose.has(key)) recreated.push(key);
    }
    if (lost.length) why.push(`lost: ${lost.slice(0, 5).join(', ')}${lost.length > 5 ? ', ...' : ''}`);
    if (duplicated.length) why.push(`duplicated: ${duplicated.slice(0, 5).join(', ')}`);
    if (orphaned.length) why.push(`orphaned: ${orphaned.slice(0, 5).join(', ')}`);
    const audit = { desired: wanted.size, present: owned.size, lost, duplicated, orphaned, recreated };
    return { ok: why.length === 0, why, audit };
  }

  /** Polls until converged; returns the time it took from `t0` and the audit then. */
  async converged(what: string, t0: number, timeoutMs: number, before?: Map<string, Owned>, deleted?: ReadonlySet<string>) {
    let last: string[] = [];
    try {
      const r = await until(
        async () => {
          const c = await this.check(before, deleted);
          last = c.why;
          return c.ok ? c : undefined;
        },
        { message: what, timeoutMs, intervalMs: 100 },
      );
      return { ms: since(t0), audit: r.audit };
    } catch (err) {
      throw new Error(`${what}: not converged after ${timeoutMs} ms: ${last.join('; ')}`, { cause: err });
    }
  }
}

/** One `kvroute operator` process with its metrics port and log. */
interface OperatorProc {
  name: string;
  kvroute: KvrouteProcess;
  metricsPort: number;
}

const alive = (p: OperatorProc) => p.kvroute.child.exitCode === null && p.kvroute.child.signalCode === null;

async function launchOperator(env: KubeEnv, name: string, lease?: LeaseSettings): Promise<OperatorProc> {
  const listening = (server: string) => (r: LogRecord) => r.msg === 'http server listening' && r.server === server;
  const kvroute = await spawnKvroute(
    [
      'operator',
      `--kubeconfig=${env.kubeconfigPath}`,
      ...(lease
        ? [
            '--leader-elect',
            '--leader-election-namespace=default',
            `--lease-duration=${lease.durationMs}`,
            `--renew-deadline=${lease.renewDeadlineMs}`,
            `--retry-period=${lease.retryPeriodMs}`,
          ]
        : []),
      '--metrics-port=0',
      '--health-port=0',
      '--bind-address=127.0.0.1',
      // Info, for the "re-listing" lines; the default resync (10 min) never fires here, so every
      // convergence is the watches' doing.
      '--log-level=info',
    ],
    {
      name: `operator ${name}`,
      logFile: path.join(env.dir, `operator-${name}.log`),
      readyLine: listening('health'),
      readyUrl: (r) => `http://127.0.0.1:${portOf(r, 'port')}/readyz`,
      timeoutMs: 60_000,
    },
  );
  const metrics = await kvroute.waitForLog(listening('metrics'));
  return { name, kvroute, metricsPort: portOf(metrics, 'port') };
}

async function metricsText(p: OperatorProc): Promise<string> {
  return (await fetch(`http://127.0.0.1:${p.metricsPort}/metrics`)).text();
}

/** Sum of a counter's samples whose labels include every `labels` pair, by informer label. */
function samples(text: string, name: string, labels: Record<string, string> = {}): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const m = /^[^{]+\{([^}]*)\} ([0-9.e+-]+)$/.exec(line);
    if (!m) continue;
    const l = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (!Object.entries(labels).every(([k, v]) => l[k] === v)) continue;
    out.set(l.informer ?? '', (out.get(l.informer ?? '') ?? 0) + Number(m[2]));
  }
  return out;
}

async function informerCounts(p: OperatorProc, since?: InformerSnapshot): Promise<InformerCounts & { snapshot: InformerSnapshot }> {
  const text = await metricsText(p);
  const relists = samples(text, 'kvroute_operator_informer_lists_total', { kind: 'relist' });
  const restarts = samples(text, 'kvroute_operator_informer_restarts_total');
  const logLines = p.kvroute.records().filter((r) => String(r.msg).startsWith('re-listing')).length;
  const snapshot = { relists, restarts: [...restarts.values()].reduce((a, b) => a + b, 0), logLines };
  const relisted = [...relists].filter(([inf, n]) => n > (since?.relists.get(inf) ?? 0)).map(([inf]) => inf);
  return {
    relists: [...relists.values()].reduce((a, b) => a + b, 0) - [...(since?.relists.values() ?? [])].reduce((a, b) => a + b, 0),
    relistedInformers: relisted.sort(),
    restarts: snapshot.restarts - (since?.restarts ?? 0),
    relistLogLines: logLines - (since?.logLines ?? 0),
    snapshot,
  };
}

interface InformerSnapshot {
  relists: Map<string, number>;
  restarts: number;
  logLines: number;
}

const strip = ({ snapshot: _, ...counts }: InformerCounts & { snapshot: InformerSnapshot }): InformerCounts => counts;

/** The API calls the scenarios make: pools with a model server, models, and edits. */
function fixtures(client: KubeClient) {
  const pool = (ns: string, name: string, replicas = 1) =>
    client.create({
      apiVersion: GV,
      kind: 'InferencePool',
      metadata: { name, namespace: ns },
      spec: { model: { name: 'meta-llama/Llama-3.1-8B-Instruct' }, modelServer: { image: 'vllm/vllm-openai:v0.33.0', replicas } },
    });
  const model = (ns: string, name: string, poolName: string) =>
    client.create({
      apiVersion: GV,
      kind: 'InferenceModel',
      metadata: { name, namespace: ns },
      spec: { modelName: name, poolRef: { name: poolName } },
    });
  const scale = (ns: string, name: string, replicas: number) =>
    client.request('PATCH', resourcePath(GV, 'InferencePool', ns, name), {
      body: { spec: { modelServer: { replicas } } },
      contentType: 'application/merge-patch+json',
    });
  const del = (apiVersion: string, kind: string, ns: string, name: string) =>
    client
      .request('DELETE', resourcePath(apiVersion, kind, ns, name))
      .catch((e: unknown) => (isNotFound(e) ? undefined : Promise.reject(e)));
  return { pool, model, scale, del };
}

/** Creates `pools` pools with two models each in `ns`. */
async function populate(client: KubeClient, ns: string, pools: number): Promise<void> {
  const f = fixtures(client);
  await createNamespace(client, ns);
  for (let i = 0; i < pools; i++) {
    await f.pool(ns, `p${i}`);
    await f.model(ns, `p${i}-a`, `p${i}`);
    await f.model(ns, `p${i}-b`, `p${i}`);
  }
}

/** etcd's current revision, through its v3 JSON gateway. */
async function etcdRevision(env: KubeEnv): Promise<number> {
  const res = await fetch(`${env.etcdUrl}/v3/kv/range`, {
    method: 'POST',
    body: JSON.stringify({ key: Buffer.from('/').toString('base64'), limit: 1 }),
  });
  const body = (await res.json()) as { header?: { revision?: string } };
  const rev = Number(body.header?.revision);
  if (!Number.isSafeInteger(rev) || rev <= 0) throw new Error(`etcd range answered without a revision: ${JSON.stringify(body)}`);
  return rev;
}

async function compactEtcd(env: KubeEnv, revision: number): Promise<void> {
  const res = await fetch(`${env.etcdUrl}/v3/kv/compaction`, {
    method: 'POST',
    body: JSON.stringify({ revision: String(revision), physical: true }),
  });
  if (!res.ok) throw new Error(`etcd compaction to ${revision} failed: ${res.status} ${await res.text()}`);
}

async function apiServerRestart(
  env: KubeEnv,
  op: OperatorProc,
  checker: Checker,
  o: { ns: string; pools: number; downMs: number; timeoutMs: number; progress: (l: string) => void },
): Promise<ApiServerRestartResult> {
  const f = fixtures(env.client);
  const before = await checker.owned();
  const counts0 = await informerCounts(op);
  o.progress(`apiserver-restart: killing kube-apiserver (etcd stays), down for ${o.downMs} ms`);
  const tKill = performance.now();
  await env.stopApiServer('SIGKILL');
  await new Promise((r) => setTimeout(r, o.downMs));
  await env.startApiServer();
  const tReady = performance.now();
  const unavailableMs = Math.round(tReady - tKill);
  // Changes the operator learns of only through watches that resume (or re-list) after the restart.
  const drift = `${o.ns}/Deployment/p0-router`;
  const changes = [
    `created pool ${o.ns}/late with model late-a`,
    `scaled ${o.ns}/p0 model servers to 2`,
    `deleted model ${o.ns}/p1-b`,
    `deleted ${drift} by hand`,
  ];
  await f.pool(o.ns, 'late');
  await f.model(o.ns, 'late-a', 'late');
  await f.scale(o.ns, 'p0', 2);
  await f.del(GV, 'InferenceModel', o.ns, 'p1-b');
  await f.del('apps/v1', 'Deployment', o.ns, 'p0-router');
  o.progress(`apiserver-restart: /readyz again after ${unavailableMs} ms; ${changes.length} changes made; waiting for convergence`);
  const c = await checker.converged('convergence after the API server restart', tReady, o.timeoutMs, before, new Set([drift]));
  const counts = await informerCounts(op, counts0.snapshot);
  return {
    downMs: o.downMs,
    unavailableMs,
    changes,
    convergeMs: c.ms,
    convergeFromKillMs: since(tKill),
    informers: strip(counts),
    operatorSurvived: alive(op),
    audit: c.audit,
  };
}

/** The informers over the operator's own kinds: each must re-list after its watch expires. */
const CORE_INFORMERS = ['inferencepools', 'inferencemodels', 'deployments', 'services', 'configmaps', 'namespaces'];

async function watchExpiry(
  env: KubeEnv,
  op: OperatorProc,
  checker: Checker,
  o: { ns: string; timeoutMs: number; watchTimeoutS: number; progress: (l: string) => void },
): Promise<WatchExpiryResult> {
  const f = fixtures(env.client);
  // Watches served from etcd rather than the watch cache (whose in-memory history would replay what
  // compaction removed), and closed by the server every watchTimeoutS..2*watchTimeoutS seconds.
  const apiServerFlags = ['--watch-cache=false', `--min-request-timeout=${o.watchTimeoutS}`];
  o.progress(`watch-expiry: restarting kube-apiserver with ${apiServerFlags.join(' ')}`);
  await env.stopApiServer('SIGKILL');
  await env.startApiServer(apiServerFlags);
  await checker.converged('convergence after restarting the API server for the watch-expiry scenario', performance.now(), o.timeoutMs);
  const before = await checker.owned();
  const counts0 = await informerCounts(op);
  // The operator is frozen until the server has closed all its watches; the changes are then made and
  // etcd compacted past them, so the operator can learn of them only by re-listing: every watch it
  // re-opens from its old resourceVersion is answered 410 Gone.
  const pid = op.kvroute.child.pid!;
  process.kill(pid, 'SIGSTOP');
  let revision: number;
  const drift = `${o.ns}/Deployment/p2-router`;
  const changes = [
    `created pool ${o.ns}/after-compaction with model after-compaction-a`,
    `scaled ${o.ns}/p1 model servers to 3`,
    `deleted model ${o.ns}/p0-a`,
    `deleted ${drift} by hand`,
  ];
  try {
    await new Promise((r) => setTimeout(r, (2 * o.watchTimeoutS + 1) * 1000));
    await f.pool(o.ns, 'after-compaction');
    await f.model(o.ns, 'after-compaction-a', 'after-compaction');
    await f.scale(o.ns, 'p1', 3);
    await f.del(GV, 'InferenceModel', o.ns, 'p0-a');
    await f.del('apps/v1', 'Deployment', o.ns, 'p2-router');
    await createNamespace(env.client, `${o.ns}-churn`);
    revision = await etcdRevision(env);
    await compactEtcd(env, revision);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  const t0 = performance.now();
  o.progress(
    `watch-expiry: operator frozen ${2 * o.watchTimeoutS + 1} s, ${changes.length} changes made, etcd compacted to revision ${revision}; operator resumed`,
  );
  let relistedMs = -1;
  const relisted = until(
    async () => {
      const c = await informerCounts(op, counts0.snapshot);
      return CORE_INFORMERS.every((i) => c.relistedInformers.includes(i));
    },
    { message: `informers ${CORE_INFORMERS.join(', ')} re-listed after compaction`, timeoutMs: o.timeoutMs, intervalMs: 100 },
  ).then(() => (relistedMs = since(t0)));
  const c = await checker.converged('convergence after the watches expired', t0, o.timeoutMs, before, new Set([drift]));
  await relisted;
  o.progress(
    `watch-expiry: every core informer re-listed after ${relistedMs} ms; converged after ${c.ms} ms; checking the watches resumed`,
  );
  // Past the re-lists: a change reaches the operator only if its watches resumed from the new lists.
  const t1 = performance.now();
  const drift2 = `${o.ns}/Deployment/p1-router`;
  await f.scale(o.ns, 'p2', 2);
  await f.del('apps/v1', 'Deployment', o.ns, 'p1-router');
  changes.push(`after the re-lists: scaled ${o.ns}/p2 model servers to 2 and deleted ${drift2} by hand`);
  const resumed = await checker.converged(
    'convergence after a change made once the watches resumed',
    t1,
    o.timeoutMs,
    before,
    new Set([drift, drift2]),
  );
  const counts = await informerCounts(op, counts0.snapshot);
  return {
    apiServerFlags,
    compactedRevision: revision,
    changes,
    relistedMs,
    convergeMs: c.ms,
    resumeConvergeMs: resumed.ms,
    informers: strip(counts),
    operatorSurvived: alive(op),
    audit: resumed.audit,
  };
}

async function leaderGauge(p: OperatorProc): Promise<number> {
  return Number(/^kvroute_operator_leader (\d+)/m.exec(await metricsText(p))?.[1]);
}

async function leaseHolder(client: KubeClient): Promise<{ holderIdentity?: string; leaseTransitions?: number }> {
  return (
    await client.get<{ spec: { holderIdentity?: string; leaseTransitions?: number } }>(
      resourcePath('coordination.k8s.io/v1', 'Lease', 'default', 'kvroute-operator'),
    )
  ).spec;
}

/**
 * Two replicas with leader election; the leader SIGKILLed `runs` times (a fresh replica joins after each
 * kill, so two always run). A change made right after each kill must be reconciled by the new leader.
 */
async function leaderFailover(
  env: KubeEnv,
  checker: Checker,
  o: { ns: string; settings: string; lease: LeaseSettings; runs: number; timeoutMs: number; progress: (l: string) => void },
): Promise<LeaderFailoverResult> {
  const f = fixtures(env.client);
  const replicas: OperatorProc[] = [];
  let next = 0;
  const launch = async () => {
    const p = await launchOperator(env, `${o.settings}-${next++}`, o.lease);
    replicas.push(p);
    return p;
  };
  const runs: LeaderFailoverRun[] = [];
  try {
    await Promise.all([launch(), launch()]);
    for (let run = 0; run < o.runs; run++) {
      const live = replicas.filter(alive);
      const [leader, follower] = await until(
        async () => {
          const g = await Promise.all(live.map(leaderGauge));
          if (g.filter((x) => x === 1).length !== 1) return undefined;
          const l = live[g.indexOf(1)]!;
          return [l, live.find((p) => p !== l)!] as const;
        },
        { message: 'exactly one leader', timeoutMs: o.timeoutMs, intervalMs: 100 },
      );
      await checker.converged('convergence before the leader is killed', performance.now(), o.timeoutMs);
      const before = await checker.owned();
      const transitions0 = (await leaseHolder(env.client)).leaseTransitions ?? 0;
      o.progress(`leader-failover ${o.settings} run ${run + 1}/${o.runs}: SIGKILL ${leader.name} (pid ${leader.kvroute.child.pid})`);
      const t0 = performance.now();
      leader.kvroute.child.kill('SIGKILL');
      await leader.kvroute.exited;
      const changed = `p${run % 3}`;
      const poolName = `after-kill-${o.settings}-${run}`;
      await f.scale(o.ns, `p${run % 3}`, 2 + run);
      await f.pool(o.ns, poolName);
      let leaseAcquiredMs = -1;
      const acquired = until(
        async () => String((await leaseHolder(env.client)).holderIdentity).endsWith(`_${follower.kvroute.child.pid}`),
        {
          message: `${follower.name} holds the Lease`,
          timeoutMs: o.timeoutMs,
          intervalMs: 50,
        },
      ).then(() => (leaseAcquiredMs = since(t0)));
      await until(async () => (await leaderGauge(follower)) === 1, {
        message: `${follower.name} leads`,
        timeoutMs: o.timeoutMs,
        intervalMs: 50,
      });
      const failoverMs = since(t0);
      await acquired;
      const c = await checker.converged('convergence after the failover', t0, o.timeoutMs, before);
      const after = await checker.owned();
      // Objects of pools nobody changed: the new leader's first reconcile re-applies them unchanged.
      const untouched = [...before].filter(
        ([k]) => !(k.startsWith(`${o.ns}/`) && k.split('/')[2]!.startsWith(`${changed}-`)) && after.has(k),
      );
      const rewritten = untouched.filter(([k, o0]) => after.get(k)!.metadata?.resourceVersion !== o0.metadata?.resourceVersion).length;
      const r: LeaderFailoverRun = {
        lease: o.lease,
        failoverMs,
        leaseAcquiredMs,
        reconcileAfterKillMs: c.ms,
        leaseExpiryBoundMs: o.lease.durationMs - 2 * o.lease.retryPeriodMs,
        rewritten,
        leaseTransitions: ((await leaseHolder(env.client)).leaseTransitions ?? 0) - transitions0,
        audit: c.audit,
      };
      runs.push(r);
      o.progress(
        `leader-failover ${o.settings} run ${run + 1}: failover ${failoverMs} ms (lease ${o.lease.durationMs} ms), change reconciled ${c.ms} ms after the kill`,
      );
      if (run + 1 < o.runs) await launch();
    }
  } finally {
    for (const p of replicas) if (alive(p)) await p.kvroute.stop(5_000);
  }
  const fo = runs.map((r) => r.failoverMs);
  return {
    settings: o.settings,
    lease: o.lease,
    runs,
    failoverMs: { min: Math.min(...fo), max: Math.max(...fo), mean: Math.round(fo.reduce((a, b) => a + b, 0) / fo.length) },
  };
}

const clean = (a: ObjectAudit) => a.lost.length + a.duplicated.length + a.orphaned.length + a.recreated.length === 0;

/**
 * Runs the three operator faults against a fresh kube-apiserver + etcd. Quick: 3 pools, a 2 s outage,
 * one failover with a 5 s lease. Full: 10 pools, a 10 s outage, three failovers with the shipped lease
 * settings (10 s / 7 s / 1.5 s) and three with Kubernetes' usual 15 s / 10 s / 2 s for comparison.
 */
export async function runOperatorChaos(opts: OperatorChaosOptions): Promise<OperatorChaosReport> {
  if (!kubeBinariesAvailable()) throw new Error('kube binaries missing: run `bash hack/kube/install.sh` (caches them under .cache/kube)');
  const { quick, progress } = opts;
  const pools = quick ? 3 : 10;
  const timeoutMs = quick ? 60_000 : 120_000;
  const loadStart = load();
  progress(`operator chaos (${quick ? 'quick' : 'full'}): starting etcd + kube-apiserver`);
  const env = await startKube();
  const running: OperatorProc[] = [];
  try {
    const { client } = env;
    await installKvrouteCrds(client);
    const version = await client.get<{ gitVersion: string }>('/version');
    const namespaces = ['chaos-restart', 'chaos-leader'];
    const checker = new Checker(client, namespaces);
    const op = await launchOperator(env, 'single');
    running.push(op);
    const t0 = performance.now();
    for (const ns of namespaces) await populate(client, ns, pools);
    const initial = await checker.converged('initial convergence', t0, timeoutMs);
    progress(`operator chaos: ${pools * 2} pools, ${pools * 4} models converged after ${initial.ms} ms (${initial.audit.desired} objects)`);

    const restart = await apiServerRestart(env, op, checker, {
      ns: 'chaos-restart',
      pools,
      downMs: quick ? 2_000 : 10_000,
      timeoutMs,
      progress,
    });
    progress(`apiserver-restart: converged ${restart.convergeMs} ms after /readyz (${restart.convergeFromKillMs} ms after the kill)`);
    const expiry = await watchExpiry(env, op, checker, { ns: 'chaos-restart', timeoutMs, watchTimeoutS: 3, progress });
    await op.kvroute.stop(5_000);
    // Back to the default flags (the watch cache on) for the failovers.
    progress('leader-failover: restarting kube-apiserver with its default flags');
    await env.stopApiServer('SIGKILL');
    await env.startApiServer();
    const failovers: LeaderFailoverResult[] = [];
    if (quick) {
      failovers.push(
        await leaderFailover(env, checker, {
          ns: 'chaos-leader',
          settings: 'quick',
          lease: { durationMs: 5_000, renewDeadlineMs: 3_500, retryPeriodMs: 500 },
          runs: 1,
          timeoutMs,
          progress,
        }),
      );
    } else {
      failovers.push(
        await leaderFailover(env, checker, { ns: 'chaos-leader', settings: 'shipped', lease: SHIPPED_LEASE, runs: 3, timeoutMs, progress }),
      );
      failovers.push(
        await leaderFailover(env, checker, {
          ns: 'chaos-leader',
          settings: 'lease15s',
          lease: { durationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 },
          runs: 3,
          timeoutMs,
          progress,
        }),
      );
    }
    const allRuns = failovers.flatMap((f) => f.runs);
    return {
      quick,
      kubeVersion: version.gitVersion,
      pools: pools * 2,
      models: pools * 4,
      loadAverage: { start: loadStart, end: load() },
      initialConvergeMs: initial.ms,
      apiServerRestart: restart,
      watchExpiry: expiry,
      leaderFailover: failovers,
      targets: {
        failoverUnder15s: allRuns.every((r) => r.failoverMs < 15_000),
        noDuplicatedOrLost: [restart.audit, expiry.audit, ...allRuns.map((r) => r.audit)].every(clean),
        convergedAfterEveryFault: restart.operatorSurvived && expiry.operatorSurvived,
      },
    };
  } finally {
    for (const p of running) if (alive(p)) await p.kvroute.stop(5_000);
    await env.stop();
  }
}

/** A table of the figures, for stderr. */
export function operatorChaosTable(r: OperatorChaosReport): string {
  const rows: string[][] = [
    ['fault', 'converged after', 'relists', 'lost/dup/orphan/recreated'],
    [
      `apiserver down ${r.apiServerRestart.downMs} ms`,
      `${r.apiServerRestart.convergeMs} ms after /readyz (${r.apiServerRestart.convergeFromKillMs} ms after kill)`,
      String(r.apiServerRestart.informers.relists),
      auditCell(r.apiServerRestart.audit),
    ],
    [
      'watches expired (410)',
      `${r.watchExpiry.convergeMs} ms; resumed change ${r.watchExpiry.resumeConvergeMs} ms`,
      String(r.watchExpiry.informers.relists),
      auditCell(r.watchExpiry.audit),
    ],
    ...r.leaderFailover.flatMap((f) =>
      f.runs.map((run, i) => [
        `leader SIGKILL ${f.settings} #${i + 1} (lease ${f.lease.durationMs} ms)`,
        `failover ${run.failoverMs} ms; change ${run.reconcileAfterKillMs} ms`,
        '-',
        auditCell(run.audit),
      ]),
    ),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  return rows.map((row) => row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ')).join('\n');
}

function auditCell(a: ObjectAudit): string {
  return `${a.lost.length}/${a.duplicated.length}/${a.orphaned.length}/${a.recreated.length} of ${a.desired}`;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const quick = process.argv.includes('--quick');
  const report = await runOperatorChaos({ quick, progress: (l) => process.stderr.write(`${l}\n`) });
  process.stderr.write(`${operatorChaosTable(report)}\n`);
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}
