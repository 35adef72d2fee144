// A central-mode `kvroute indexer` (--zmq-bind) with pod discovery against a real kube-apiserver +
// etcd: only the pool's Ready pods may publish. A fake publisher on another address claiming a real
// pod's topic is refused at the ZeroMQ handshake (ZAP, by peer address) and cannot change that pod's
// score; a pool pod naming a pod outside the pool in its topic is dropped; a NotReady pod may connect
// but its events are dropped until it turns Ready; a deleted pod's entries go and its open connection
// is no longer believed. Each refusal is counted by reason and logged. Every "pod" is a real ZMQ publisher connecting from its
// own loopback address.

import { describe, it, expect, beforeAll, afterAll, jest } from '@jest/globals';
import path from 'node:path';
import type { KubeObjectLike } from '../src/common/kube/kube-client.ts';
import { buildRouterRbac } from '../src/controllers/pool/router.ts';
import { testPool } from '../src/controllers/testing.ts';
import { TestPublisher, storedEvent } from '../src/indexer/events/test-helpers.ts';
import { portOf, spawnKvroute, type KvrouteProcess } from '../test/support/kvroute.ts';
import { freePort } from '../test/support/ports.ts';
import { until } from '../test/support/until.ts';
import { kubeTestsEnabled, startKube, type KubeEnv } from './kube/cluster.ts';
import { createModelServerPod, createNamespace, serviceAccountKubeconfig, setPodStatus } from './kube/fixtures.ts';

const NS = 'ml';
const MODEL = 'm';
const BLOCK = 4;
const TOKENS = Array.from({ length: 2 * BLOCK }, (_, i) => 100 + i);
const describeKube = kubeTestsEnabled() ? describe : describe.skip;
jest.setTimeout(60_000);

describeKube('central-mode indexer admits KV events only from Ready pods of the pool', () => {
  let env: KubeEnv;
  let indexer: KvrouteProcess;
  let base: string;
  let bindPort: number;
  const publishers: TestPublisher[] = [];
  const pool = testPool(
    { model: { name: MODEL }, selector: { matchLabels: { app: 'vllm' } }, targetPorts: [{ number: 8000 }] },
    { namespace: NS },
  );
  const podPath = (name?: string) => `/api/v1/namespaces/${NS}/pods${name ? `/${name}` : ''}`;

  async function createPod(name: string, ip: string, ready: boolean): Promise<void> {
    await createModelServerPod(env.client, NS, name, { app: 'vllm', 'llm-d.ai/inferenceServing': 'true' });
    await setReady(name, ip, ready);
  }
  const setReady = (name: string, ip: string, ready: boolean) => setPodStatus(env.client, NS, name, ip, ready);

  /** A vLLM-style publisher that connects to the indexer from `from` (its source address) with `topic`. */
  async function publisher(from: string, topic: string): Promise<TestPublisher> {
    const pub = await TestPublisher.start({ topic, connect: `tcp://${from}:0;127.0.0.1:${bindPort}` });
    publishers.push(pub);
    return pub;
  }

  const hashes = (n: number) => Array.from({ length: n }, (_, i) => BigInt(i + 1));

  async function scores(): Promise<Record<string, number>> {
    const res = await fetch(`${base}/v1/score`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, tokens: TOKENS }),
    });
    if (res.status !== 200) throw new Error(`score answered ${res.status}: ${await res.text()}`);
    return ((await res.json()) as { scores: Record<string, number> }).scores;
  }

  async function untrusted(reason: string): Promise<number> {
    const text = await (await fetch(`${base}/metrics`)).text();
    const m = new RegExp(`^kvroute_indexer_untrusted_source_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  }

  /** Publishes `blocks` blocks until the pod is scored so (PUB drops what it sends before the connection is up). */
  async function publishUntilScored(pub: TestPublisher, pod: string, blocks: number): Promise<void> {
    await until(
      async () => {
        await pub.publish([storedEvent(hashes(blocks), null, BLOCK)]);
        return (await scores())[pod] === blocks || undefined;
      },
      { message: `${pod} scored at ${blocks}`, timeoutMs: 15_000, intervalMs: 100 },
    );
  }

  /**
   * Starts a publisher (from, topic) and keeps publishing until a refusal with `reason` is counted: the
   * attempt demonstrably reached the indexer. An address of no pod is refused after the indexer's 10 s
   * wait for discovery to learn it.
   */
  async function publishUntilCounted(from: string, topic: string, blocks: number, reason: string): Promise<TestPublisher> {
    const before = await untrusted(reason);
    const pub = await publisher(from, topic);
    await until(
      async () => {
        await pub.publish([storedEvent(hashes(blocks), null, BLOCK)]);
        return (await untrusted(reason)) > before || undefined;
      },
      { message: `a ${reason} refusal counted`, timeoutMs: 25_000, intervalMs: 100 },
    );
    // A few more batches after the refusal was counted, in case any could still get through.
    for (let i = 0; i < 5; i++) {
      await pub.publish([storedEvent(hashes(blocks), null, BLOCK)]);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return pub;
  }

  beforeAll(async () => {
    env = await startKube();
    await createNamespace(env.client, NS);
    for (const obj of buildRouterRbac(pool)) await env.client.create(obj as KubeObjectLike);
    // The indexer authenticates as the router's ServiceAccount: it reads pods with the Role the operator grants.
    const kubeconfig = (await serviceAccountKubeconfig(env, NS, `${pool.metadata.name}-router`, 'router.kubeconfig')).path;

    await createPod('vllm-a', '127.0.0.2', true);
    await createPod('vllm-b', '127.0.0.3', false);
    bindPort = await freePort();
    indexer = await spawnKvroute(
      [
        'indexer',
        '--zmq-bind',
        `tcp://127.0.0.1:${bindPort}`,
        '--discover-pods',
        '--discovery-namespace',
        NS,
        '--discovery-selector',
        'app=vllm',
        '--pod-replay-port',
        'none',
        '--not-ready-grace',
        '0',
        '--kubeconfig',
        kubeconfig,
        '--listen-host',
        '127.0.0.1',
        '--http-port',
        '0',
        '--grpc-port',
        '0',
        '--block-size',
        String(BLOCK),
        '--tokenizer-workers',
        '0',
      ],
      { readyLine: 'indexer ready', logFile: path.join(env.dir, 'indexer.log') },
    );
    expect(indexer.ready).toMatchObject({ mode: 'central', publishers: 'ready-pods' });
    base = `http://127.0.0.1:${portOf(indexer.ready, 'httpPort')}`;
    await until(() => fetch(`${base}/readyz`).then((r) => r.status === 200 || undefined), {
      message: 'readyz',
      timeoutMs: 30_000,
      intervalMs: 100,
    });
  }, 120_000);

  afterAll(async () => {
    for (const p of publishers) p.close();
    await indexer?.stop();
    await env?.stop();
  }, 60_000);

  it("refuses a fake publisher on another address claiming a Ready pod's topic: the pod's score does not move", async () => {
    const real = await publisher('127.0.0.2', `kv@127.0.0.2@${MODEL}`);
    await publishUntilScored(real, '127.0.0.2', 1);

    await publishUntilCounted('127.0.0.5', `kv@127.0.0.2@${MODEL}`, 2, 'peer_not_pool_pod');
    expect((await scores())['127.0.0.2']).toBe(1);
    const refused = await indexer.waitForLog((r) => r.msg === 'KV-event publisher refused: it does not connect from a pod of the pool');
    expect(refused).toMatchObject({ level: 'warn', reason: 'peer_not_pool_pod', peer: '127.0.0.5' });

    // The control: the same batch from the pod's own address does move it, so the refusal is what kept it at 1.
    await publishUntilScored(real, '127.0.0.2', 2);
  });

  it('drops messages from a pool pod whose topic names a pod that is not a Ready pod of the pool', async () => {
    await publishUntilCounted('127.0.0.2', `kv@127.0.0.9@${MODEL}`, 2, 'topic_pod_not_ready');
    expect(await scores()).not.toHaveProperty('127.0.0.9');
    const dropped = await indexer.waitForLog((r) => r.msg === 'KV-event message dropped: its topic names no Ready pod of the pool');
    expect(dropped).toMatchObject({ level: 'warn', reason: 'topic_pod_not_ready', podId: '127.0.0.9' });
  });

  it('lets a NotReady pod of the pool connect but drops its events until it turns Ready, then scores it', async () => {
    // vLLM connects its publisher while loading, before it is Ready, and libzmq never retries a refused handshake.
    const pod = await publishUntilCounted('127.0.0.3', `kv@127.0.0.3@${MODEL}`, 1, 'topic_pod_not_ready');
    expect(await scores()).not.toHaveProperty('127.0.0.3');
    await setReady('vllm-b', '127.0.0.3', true);
    await publishUntilScored(pod, '127.0.0.3', 1);
  });

  it("forgets a deleted pod's entries and no longer believes its open connection", async () => {
    const pod = await publisher('127.0.0.2', `kv@127.0.0.2@${MODEL}`);
    await publishUntilScored(pod, '127.0.0.2', 2);
    await env.client.request('DELETE', podPath('vllm-a'), { body: { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: 0 } });
    await until(async () => !('127.0.0.2' in (await scores())) || undefined, {
      message: '127.0.0.2 dropped',
      timeoutMs: 10_000,
      intervalMs: 100,
    });
    // Its connection was admitted while it was a pod of the pool; what it sends now is dropped by the topic check.
    const before = await untrusted('topic_pod_not_ready');
    await until(
      async () => {
        await pod.publish([storedEvent(hashes(2), null, BLOCK)]);
        return (await untrusted('topic_pod_not_ready')) > before || undefined;
      },
      { message: "the deleted pod's batches dropped and counted", timeoutMs: 10_000, intervalMs: 100 },
    );
    expect(await scores()).not.toHaveProperty('127.0.0.2');
  });
});
