// `npm run bench:operator`: against a real kube-apiserver + etcd (hack/kube/install.sh), the time from
// an InferencePool change to its applied objects (p50/p99, 100 pools: a burst of creates, then one
// update at a time) and the operator process's memory while it watches 1,000 serving pods. The
// operator runs as its own `kvroute operator` process. Prints a table, writes bench/results/operator.json.

import fs from 'node:fs';
import path from 'node:path';
import type { KubernetesObject, V1Deployment } from '@kubernetes/client-node';
import { silentLogger } from '../src/common/log.ts';
import { Informer } from '../src/common/kube/informer.ts';
import { resourcePath } from '../src/common/kube/kube-client.ts';
import { kubeBinariesAvailable, startKube } from '../e2e/kube/cluster.ts';
import { createNamespace, installKvrouteCrds } from '../e2e/kube/fixtures.ts';
import { spawnKvroute } from '../test/support/kvroute.ts';
import { freePort } from '../test/support/ports.ts';
import { repoRoot } from '../test/support/repo-root.ts';
import { until } from '../test/support/until.ts';
import { environment, percentile, writeResults } from './lib/results.ts';
import { fmt, formatTable } from '../src/common/table.ts';

const POOLS = 100;
const PODS = 1000;
const NS = 'bench';
const GV = 'inference.kvroute.io/v1alpha1';

if (!kubeBinariesAvailable()) {
  process.stderr.write('kube binaries missing: run hack/kube/install.sh first\n');
  process.exit(1);
}

const env = await startKube();
const { client } = env;
await installKvrouteCrds(client);
await createNamespace(client, NS);

// Ports picked up front, not port 0 read back from the log: the operator runs at --log-level=warn, so
// as not to measure its logging, and the "listening" lines are info.
const metricsPort = await freePort();
const healthPort = await freePort();
const operator = await spawnKvroute(
  [
    'operator',
    `--kubeconfig=${env.kubeconfigPath}`,
    `--metrics-port=${metricsPort}`,
    `--health-port=${healthPort}`,
    '--bind-address=127.0.0.1',
    '--log-level=warn',
  ],
  { logFile: path.join(env.dir, 'operator.log'), readyUrl: `http://127.0.0.1:${healthPort}/readyz`, timeoutMs: 30_000 },
);

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  return Number(new RegExp(`^${name} ([0-9.e+]+)$`, 'm').exec(text)?.[1]);
}
const memory = async () => ({
  rssMiB: (await metric('kvroute_process_resident_memory_bytes')) / 2 ** 20,
  heapMiB: (await metric('kvroute_nodejs_heap_size_used_bytes')) / 2 ** 20,
});

try {
  // The bench's own watch on Deployments timestamps when each applied object becomes visible.
  const deployments = new Informer<V1Deployment & KubernetesObject>(env.kubeConfig, client, {
    name: 'bench-deployments',
    path: `/apis/apps/v1/namespaces/${NS}/deployments`,
    log: silentLogger,
  });
  const waiters = new Map<string, { test: (d: V1Deployment) => boolean; resolve: (t: number) => void }>();
  deployments.on((_e, d) => {
    const w = waiters.get(d.metadata!.name!);
    if (w && w.test(d)) {
      waiters.delete(d.metadata!.name!);
      w.resolve(performance.now());
    }
  });
  await deployments.start();
  const when = (name: string, test: (d: V1Deployment) => boolean) =>
    new Promise<number>((resolve) => {
      const live = deployments.get(name, NS);
      if (live && test(live)) return resolve(performance.now());
      waiters.set(name, { test, resolve });
    });
  const blockSize = (d: V1Deployment) => d.spec?.template.spec?.containers[0]?.args?.find((a) => a.startsWith('--block-size='));

  const names = Array.from({ length: POOLS }, (_, i) => `pool-${String(i).padStart(3, '0')}`);
  const createMs: number[] = [];
  const burstStart = performance.now();
  await Promise.all(
    names.map(async (name) => {
      const seen = Promise.all([when(`${name}-vllm`, () => true), when(`${name}-router`, () => true)]);
      const t0 = performance.now();
      await client.create({
        apiVersion: GV,
        kind: 'InferencePool',
        metadata: { name, namespace: NS },
        spec: { model: { name: 'm' }, modelServer: { image: 'vllm' } },
      });
      const [a, b] = await seen;
      createMs.push(Math.max(a, b) - t0);
    }),
  );
  const burstTotalMs = performance.now() - burstStart;

  const updateMs: number[] = [];
  for (const name of names) {
    const seen = when(`${name}-vllm`, (d) => blockSize(d) === '--block-size=32');
    const t0 = performance.now();
    await client.request('PATCH', resourcePath(GV, 'InferencePool', NS, name), {
      body: { spec: { modelServer: { blockSize: 32 } } },
      contentType: 'application/merge-patch+json',
    });
    updateMs.push((await seen) - t0);
  }
  await deployments.stop();
  const idle = await memory();

  const podsStart = performance.now();
  const batch = 50;
  for (let i = 0; i < PODS; i += batch) {
    await Promise.all(
      Array.from({ length: Math.min(batch, PODS - i) }, (_, j) => {
        const n = i + j;
        const pool = names[n % POOLS]!;
        return client.create({
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: {
            name: `vllm-${n}`,
            namespace: NS,
            labels: {
              'inference.kvroute.io/pool': pool,
              'app.kubernetes.io/component': 'model-server',
              'llm-d.ai/inferenceServing': 'true',
            },
          },
          spec: { containers: [{ name: 'vllm', image: 'vllm' }] },
        });
      }),
    );
  }
  const total = async () => {
    const list = await client.list<{ status?: { replicas?: number } }>(resourcePath(GV, 'InferencePool', NS));
    return list.items.reduce((s, p) => s + (p.status?.replicas ?? 0), 0);
  };
  await until(async () => (await total()) === PODS, { message: `${PODS} pods in pool status`, timeoutMs: 120_000, intervalMs: 200 });
  const podsReflectedMs = performance.now() - podsStart;
  const watching = await memory();

  const sortedCreate = [...createMs].sort((a, b) => a - b);
  const sortedUpdate = [...updateMs].sort((a, b) => a - b);
  const results = {
    benchmark: 'operator',
    environment: environment(),
    kube: fs.readFileSync(path.join(repoRoot, '.cache/kube/bin/kube-apiserver.version'), 'utf8').trim(),
    pools: POOLS,
    createBurst: { p50Ms: percentile(sortedCreate, 50), p99Ms: percentile(sortedCreate, 99), totalMs: burstTotalMs },
    updateOneAtATime: { p50Ms: percentile(sortedUpdate, 50), p99Ms: percentile(sortedUpdate, 99) },
    memory: { pools: POOLS, pods: 0, ...idle },
    memoryWithPods: { pools: POOLS, pods: PODS, ...watching, reflectedInStatusMs: podsReflectedMs },
    notes:
      'CR change -> object visible through a watch, measured from the client; the apiserver, etcd, operator and bench share 2 cores with other jobs.',
  };
  writeResults(path.join(repoRoot, 'bench/results/operator.json'), results);
  process.stdout.write(
    formatTable(
      ['measure', 'p50 ms', 'p99 ms', 'total ms', 'RSS MiB', 'heap MiB'],
      [
        [
          `create ${POOLS} pools at once -> Deployments`,
          fmt(results.createBurst.p50Ms),
          fmt(results.createBurst.p99Ms),
          fmt(burstTotalMs),
          '',
          '',
        ],
        [
          `update ${POOLS} pools one by one -> vLLM args`,
          fmt(results.updateOneAtATime.p50Ms),
          fmt(results.updateOneAtATime.p99Ms),
          '',
          '',
          '',
        ],
        [`operator, ${POOLS} pools, 0 pods`, '', '', '', fmt(idle.rssMiB), fmt(idle.heapMiB)],
        [`operator, ${POOLS} pools, ${PODS} pods watched`, '', '', fmt(podsReflectedMs), fmt(watching.rssMiB), fmt(watching.heapMiB)],
      ],
    ) + '\nwrote bench/results/operator.json\n',
  );
} finally {
  await operator.stop();
  await env.stop();
}
