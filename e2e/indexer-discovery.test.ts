// Two `kvroute indexer` processes in discovery mode against a real kube-apiserver + etcd, run from
// the indexer.yaml the operator renders and with only the router's ServiceAccount and Role. Pod objects
// get their status (IP, Ready) from the test as a kubelet would, each "pod" a real ZMQ publisher bound
// to its own loopback address. Both indexers must see every pod (the HA case), drop a pod that turns
// NotReady or is deleted, pick up a new one quickly, and see every data-parallel rank of a pod.

import { describe, it, expect, beforeAll, afterAll, jest } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { KubeObjectLike } from '../src/common/kube/kube-client.ts';
import { buildRouterRbac, renderIndexerConfig } from '../src/controllers/pool/router.ts';
import { ownSelection } from '../src/controllers/pool/selection.ts';
import { testPool } from '../src/controllers/testing.ts';
import { TestPublisher, storedEvent, type WireEvent } from '../src/indexer/events/test-helpers.ts';
import { portOf, spawnKvroute, type KvrouteProcess } from '../test/support/kvroute.ts';
import { freePortBlock } from '../test/support/ports.ts';
import { until } from '../test/support/until.ts';
import { kubeTestsEnabled, startKube, type KubeEnv } from './kube/cluster.ts';
import { createModelServerPod, createNamespace, serviceAccountKubeconfig, setPodStatus as setKubeletStatus } from './kube/fixtures.ts';

const NS = 'ml';
const MODEL = 'm';
const BLOCK = 4;
/** Every pod of the pool runs this many ranks; pods with fewer publishers leave the other ports silent. */
const DP_SIZE = 2;
/**
 * The pool's event and replay ports, as a Deployment fixes them for every pod: rank r of a pod
 * publishes on eventsPort + r and replays on replayPort + r, each pod on its own loopback address.
 * Picked free (on every address) when the suite starts.
 */
let eventsPort: number;
let replayPort: number;
/** Tokens of two blocks: pod A will hold both, pod B the first. */
const TOKENS = Array.from({ length: 2 * BLOCK }, (_, i) => 100 + i);
const describeKube = kubeTestsEnabled() ? describe : describe.skip;
jest.setTimeout(60_000);

interface IndexerProcess {
  process: KvrouteProcess;
  base: string;
}

interface PodsView {
  pods: Record<string, number>;
  ingestion: { sources: number; gaps: number; replays: number; replayFailures: number; resets: number };
  discovery: { synced: boolean; pods: string[] };
}

async function scores(base: string): Promise<Record<string, number>> {
  const res = await fetch(`${base}/v1/score`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, tokens: TOKENS }),
  });
  if (res.status !== 200) throw new Error(`score answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { scores: Record<string, number> }).scores;
}

async function podsView(base: string): Promise<PodsView> {
  return (await (await fetch(`${base}/v1/pods`)).json()) as PodsView;
}

describeKube('indexer pod discovery against kube-apiserver', () => {
  let env: KubeEnv;
  const indexers: IndexerProcess[] = [];
  /** An adopted-pods pool: the operator renders discovery of `app=vllm` pods in its namespace. */
  const pool = testPool(
    { model: { name: MODEL }, selector: { matchLabels: { app: 'vllm' } }, targetPorts: [{ number: 8000 }] },
    { namespace: NS },
  );
  let configFile: string;
  let routerKubeconfig: string;
  const publishers = new Map<string, TestPublisher>();

  const podPath = (name?: string) => `/api/v1/namespaces/${NS}/pods${name ? `/${name}` : ''}`;

  const SERVING_LABELS = { app: 'vllm', 'llm-d.ai/inferenceServing': 'true' };
  const createPod = (name: string, labels: Record<string, string> = SERVING_LABELS) => createModelServerPod(env.client, NS, name, labels);
  const setPodStatus = (name: string, ip: string, ready: boolean) => setKubeletStatus(env.client, NS, name, ip, ready);

  async function publisherAt(ip: string): Promise<TestPublisher> {
    const pub = await TestPublisher.start({
      topic: `kv@${ip}@${MODEL}`,
      bind: `tcp://${ip}:${eventsPort}`,
      replayBind: `tcp://${ip}:${replayPort}`,
    });
    publishers.set(ip, pub);
    return pub;
  }

  /** Publishes `blocks` blocks from a pod until every indexer scores that pod so (PUB drops what no subscriber has joined for yet). */
  async function publishUntilScored(ip: string, blocks: number): Promise<void> {
    const pub = publishers.get(ip)!;
    const hashes = Array.from({ length: blocks }, (_, i) => BigInt(i + 1));
    await until(
      async () => {
        await pub.publish([storedEvent(hashes, null, BLOCK)]);
        const seen = await Promise.all(indexers.map((ix) => scores(ix.base)));
        return seen.every((s) => s[ip] === blocks) || undefined;
      },
      { message: `every indexer scoring ${ip} at ${blocks}`, timeoutMs: 20_000, intervalMs: 100 },
    );
  }

  /** An indexer on kernel-picked HTTP and gRPC ports, returned once it has logged them (not yet ready: discovery may be listing). */
  async function startIndexer(logFile: string, kubeconfig = routerKubeconfig): Promise<IndexerProcess> {
    // The operator's indexer.yaml, with only what a test on loopback must change given as flags.
    const args = [
      'indexer',
      '--config',
      configFile,
      '--kubeconfig',
      kubeconfig,
      '--pod-zmq-port',
      String(eventsPort),
      '--pod-replay-port',
      String(replayPort),
      '--discovery-dp-size',
      String(DP_SIZE),
      '--not-ready-grace',
      '1',
      '--listen-host',
      '127.0.0.1',
      '--http-port',
      '0',
      '--grpc-port',
      '0',
      // indexer.yaml gives the probe and metrics listener a fixed port; two indexers on one host need their own.
      '--metrics-port',
      '0',
      '--block-size',
      String(BLOCK),
      '--tokenizer-workers',
      '0',
    ];
    const process = await spawnKvroute(args, { env: { POD_NAMESPACE: NS }, readyLine: 'indexer ready', logFile });
    return { process, base: `http://127.0.0.1:${portOf(process.ready, 'httpPort')}` };
  }

  beforeAll(async () => {
    eventsPort = await freePortBlock(DP_SIZE);
    replayPort = await freePortBlock(DP_SIZE);
    env = await startKube();
    await createNamespace(env.client, NS);
    for (const obj of buildRouterRbac(pool)) await env.client.create(obj as KubeObjectLike);
    // The indexer authenticates as the router's ServiceAccount, so it has the router's Role and no more.
    routerKubeconfig = (await serviceAccountKubeconfig(env, NS, `${pool.metadata.name}-router`, 'router.kubeconfig')).path;
    configFile = path.join(env.dir, 'indexer.yaml');
    fs.writeFileSync(configFile, YAML.stringify(renderIndexerConfig(pool, ownSelection(pool)!)));
    // Pod A exists and is Ready before the indexers start (first list); pod B turns Ready after (watch).
    await createPod('vllm-a');
    await setPodStatus('vllm-a', '127.0.0.2', true);
    // A pod outside the selector and one without the inference-serving label are never connected.
    await createPod('other', { app: 'other', 'llm-d.ai/inferenceServing': 'true' });
    await setPodStatus('other', '127.0.0.8', true);
    await createPod('unlabelled', { app: 'vllm' });
    await setPodStatus('unlabelled', '127.0.0.9', true);
    await publisherAt('127.0.0.2');
    await publisherAt('127.0.0.3');
    for (const i of [0, 1]) indexers.push(await startIndexer(path.join(env.dir, `indexer-${i}.log`)));
    for (const ix of indexers) {
      await until(() => fetch(`${ix.base}/readyz`).then((r) => r.status === 200 || undefined), {
        message: `${ix.base}/readyz`,
        timeoutMs: 30_000,
        intervalMs: 100,
      });
    }
  }, 120_000);

  afterAll(async () => {
    await Promise.all(indexers.map((ix) => ix.process.stop()));
    for (const pub of publishers.values()) pub.close();
    await env?.stop();
  }, 60_000);

  /** A Ready pod at `ip` with a publisher there, already scored by both indexers at `blocks`. */
  async function readyScoredPod(name: string, ip: string, blocks: number): Promise<void> {
    await publisherAt(ip);
    await createPod(name);
    await setPodStatus(name, ip, true);
    await publishUntilScored(ip, blocks);
  }

  async function waitDropped(ip: string): Promise<void> {
    for (const ix of indexers) {
      await until(
        async () => {
          const view = await podsView(ix.base);
          const s = await scores(ix.base);
          return (!view.discovery.pods.includes(ip) && !(ip in view.pods) && !(ip in s)) || undefined;
        },
        { message: `${ix.base} dropping ${ip} from discovery, /v1/pods and scores`, timeoutMs: 10_000, intervalMs: 100 },
      );
    }
  }

  async function metric(base: string, line: RegExp): Promise<number> {
    const text = await (await fetch(`${base}/metrics`)).text();
    const m = text
      .split('\n')
      .map((l) => line.exec(l))
      .find((x) => x !== null);
    return m ? Number(m[1]) : 0;
  }
  const disconnects = (base: string, reason: string) =>
    metric(base, new RegExp(`^kvroute_indexer_discovery_disconnects_total\\{reason="${reason}"\\} (\\d+)$`));

  it('both indexers score a pod listed before they started and one that turns Ready later, never pods outside the selector', async () => {
    for (const ix of indexers) expect((await podsView(ix.base)).discovery.pods).toContain('127.0.0.2');
    await createPod('vllm-b');
    await setPodStatus('vllm-b', '127.0.0.3', true);
    await publishUntilScored('127.0.0.2', 2);
    await publishUntilScored('127.0.0.3', 1);
    for (const ix of indexers) {
      expect(await scores(ix.base)).toMatchObject({ '127.0.0.2': 2, '127.0.0.3': 1 });
      const view = await podsView(ix.base);
      expect(view.discovery.pods).toEqual(expect.arrayContaining(['127.0.0.2', '127.0.0.3']));
      expect(view.discovery.pods).not.toContain('127.0.0.8');
      expect(view.discovery.pods).not.toContain('127.0.0.9');
      expect(view.pods).toMatchObject({ '127.0.0.2': 2, '127.0.0.3': 1 });
    }
  });

  it('drops a pod that stays NotReady past the grace from scores and /v1/pods on both indexers', async () => {
    await readyScoredPod('vllm-d', '127.0.0.5', 2);
    const before = await Promise.all(indexers.map((ix) => disconnects(ix.base, 'not_ready')));
    await setPodStatus('vllm-d', '127.0.0.5', false);
    await waitDropped('127.0.0.5');
    for (const [i, ix] of indexers.entries()) expect(await disconnects(ix.base, 'not_ready')).toBe(before[i]! + 1);
  });

  it('drops a pod as soon as it is being deleted, and a force-deleted one, from scores and /v1/pods on both indexers', async () => {
    await readyScoredPod('vllm-e', '127.0.0.6', 1);
    await readyScoredPod('vllm-f', '127.0.0.7', 1);
    const dropped = async (base: string) => (await disconnects(base, 'terminating')) + (await disconnects(base, 'gone'));
    const before = await Promise.all(indexers.map((ix) => dropped(ix.base)));
    // With no kubelet to confirm, a graceful delete leaves the pod terminating; that is enough to drop it.
    await env.client.delete(podPath('vllm-e'));
    await waitDropped('127.0.0.6');
    await env.client.request('DELETE', podPath('vllm-f'), { body: { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: 0 } });
    await waitDropped('127.0.0.7');
    // The apiserver may mark even a force-deleted pod terminating before it removes it: either reason counts.
    for (const [i, ix] of indexers.entries()) expect(await dropped(ix.base)).toBe(before[i]! + 2);
  });

  it('answers /healthz but not /readyz until the first pod list succeeds, counting list/watch restarts', async () => {
    // A kubeconfig whose API server is not there: the list fails and is retried with backoff.
    const kubeconfig = path.join(env.dir, 'unreachable.kubeconfig');
    fs.writeFileSync(
      kubeconfig,
      fs.readFileSync(env.kubeconfigPath, 'utf8').replace(/server: https:\/\/127\.0\.0\.1:\d+/, 'server: https://127.0.0.1:1'),
    );
    const ix = await startIndexer(path.join(env.dir, 'indexer-unreachable.log'), kubeconfig);
    try {
      await until(() => fetch(`${ix.base}/healthz`).then((r) => r.status === 200 || undefined), {
        message: 'healthz',
        timeoutMs: 30_000,
        intervalMs: 100,
      });
      await until(async () => (await metric(ix.base, /^kvroute_indexer_discovery_watch_restarts_total (\d+)$/)) > 0 || undefined, {
        message: 'a counted restart',
        timeoutMs: 10_000,
        intervalMs: 100,
      });
      expect((await fetch(`${ix.base}/readyz`)).status).toBe(503);
      expect((await podsView(ix.base)).discovery).toEqual({ synced: false, pods: [] });
    } finally {
      await ix.process.stop();
    }
  });

  it('subscribes both indexers to a new pod within two seconds of it turning Ready', async () => {
    await publisherAt('127.0.0.4');
    await createPod('vllm-c');
    const readyAt = Date.now();
    await setPodStatus('vllm-c', '127.0.0.4', true);
    const pickedUp = await Promise.all(
      indexers.map((ix) =>
        until(async () => ((await podsView(ix.base)).discovery.pods.includes('127.0.0.4') ? { ms: Date.now() - readyAt } : undefined), {
          message: `${ix.base} picking up 127.0.0.4`,
          timeoutMs: 10_000,
          intervalMs: 20,
        }),
      ),
    );
    console.log(`new pod subscribed by both indexers ${pickedUp.map((p) => p.ms).join(' ms, ')} ms after it turned Ready`);
    for (const { ms } of pickedUp) expect(ms).toBeLessThan(2_000);
    await publishUntilScored('127.0.0.4', 2);
    for (const ix of indexers) expect((await scores(ix.base))['127.0.0.4']).toBe(2);
  });

  it('scores a two-rank pod from both ranks kept apart, replays a rank from its own replay port, and drops both ranks with the pod', async () => {
    const ip = '127.0.0.10';
    // vLLM with --data-parallel-size 2: rank r binds port + r and replay port + r, and stamps its dp_rank on each batch.
    const ranks = await Promise.all(
      [0, 1].map((r) =>
        TestPublisher.start({
          topic: `kv@${ip}@${MODEL}`,
          bind: `tcp://${ip}:${eventsPort + r}`,
          replayBind: `tcp://${ip}:${replayPort + r}`,
        }),
      ),
    );
    ranks.forEach((pub, r) => publishers.set(`${ip}#${r}`, pub));
    const [rank0, rank1] = ranks as [TestPublisher, TestPublisher];
    /** Publishes on one rank until every indexer scores the pod at `blocks` (PUB drops what no subscriber has joined for yet). */
    const publishUntil = (pub: TestPublisher, rank: number, events: WireEvent[], blocks: number) =>
      until(
        async () => {
          await pub.publish(events, { dpRank: rank });
          const seen = await Promise.all(indexers.map((ix) => scores(ix.base)));
          return seen.every((s) => s[ip] === blocks) || undefined;
        },
        { message: `every indexer scoring ${ip} at ${blocks} after rank ${rank} published`, timeoutMs: 20_000, intervalMs: 100 },
      );
    await createPod('vllm-dp');
    await setPodStatus('vllm-dp', ip, true);
    // Both ranks hash the same tokens alike (one seed per pool): rank 0 holds the first block, rank 1 both.
    await publishUntil(rank0, 0, [storedEvent([1n], null, BLOCK)], 1);
    await publishUntil(rank1, 1, [storedEvent([1n, 2n], null, BLOCK)], 2);
    for (const ix of indexers) expect((await podsView(ix.base)).discovery.pods).toContain(ip);

    // Rank 1's removal is lost on the wire; the next batch reveals the gap, which only rank 1's replay port can fill.
    const before = await Promise.all(indexers.map(async (ix) => (await podsView(ix.base)).ingestion));
    await rank1.publish([{ type: 'BlockRemoved', block_hashes: [1n, 2n], medium: 'GPU' }], { dpRank: 1, drop: true });
    await rank1.publish([storedEvent([99n], null, BLOCK, { token_ids: [1, 2, 3, 4] })], { dpRank: 1 });
    for (const ix of indexers) {
      // Rank 0's copy of the first block is its own: removing rank 1's leaves the pod at 1.
      await until(async () => (await scores(ix.base))[ip] === 1 || undefined, {
        message: `${ix.base} scoring ${ip} at 1 after rank 1's replayed removal`,
        timeoutMs: 10_000,
        intervalMs: 50,
      });
    }
    for (const [i, ix] of indexers.entries()) {
      const after = (await podsView(ix.base)).ingestion;
      expect(after.gaps).toBe(before[i]!.gaps + 1);
      expect(after.replays).toBe(before[i]!.replays + 1);
      expect(after.replayFailures).toBe(before[i]!.replayFailures);
      expect(after.resets).toBe(before[i]!.resets);
    }

    await env.client.request('DELETE', podPath('vllm-dp'), { body: { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: 0 } });
    await waitDropped(ip);
    for (const [i, ix] of indexers.entries()) {
      await until(async () => (await podsView(ix.base)).ingestion.sources === before[i]!.sources - 2 || undefined, {
        message: `${ix.base} forgetting both ranks of ${ip}`,
        timeoutMs: 10_000,
        intervalMs: 50,
      });
    }
  });
});
