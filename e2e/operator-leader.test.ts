// Two `kvroute operator --leader-elect` processes against one real API server: exactly one leads and
// reconciles; when the leader is killed the other takes over after the lease expires, and when the
// leader shuts down gracefully it releases the lease so the successor takes over at once.

import { describe, it, expect, beforeAll, afterAll, jest } from '@jest/globals';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { KubeApiError, resourcePath, type KubeClient } from '../src/common/kube/kube-client.ts';
import { portOf, spawnKvroute, type KvrouteProcess } from '../test/support/kvroute.ts';
import { until } from '../test/support/until.ts';
import { kubeTestsEnabled, startKube, type KubeEnv } from './kube/cluster.ts';
import { createNamespace, installKvrouteCrds } from './kube/fixtures.ts';

const describeKube = kubeTestsEnabled() ? describe : describe.skip;
jest.setTimeout(60_000);
const NS = 'le';
const LEASE = { durationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 250 };

interface OperatorProcess {
  name: string;
  kvroute: KvrouteProcess;
  proc: ChildProcess;
  metricsPort: number;
  healthPort: number;
}

describeKube('operator leader election', () => {
  let env: KubeEnv;
  let client: KubeClient;
  const running: OperatorProcess[] = [];

  /** `kvroute operator --leader-elect` with its health and metrics servers on kernel-picked ports, once /readyz answers. */
  async function launch(name: string): Promise<OperatorProcess> {
    const listening = (server: string) => (r: Record<string, unknown>) => r.msg === 'http server listening' && r.server === server;
    const kvroute = await spawnKvroute(
      [
        'operator',
        `--kubeconfig=${env.kubeconfigPath}`,
        '--leader-elect',
        '--leader-election-namespace=default',
        `--lease-duration=${LEASE.durationMs}`,
        `--renew-deadline=${LEASE.renewDeadlineMs}`,
        `--retry-period=${LEASE.retryPeriodMs}`,
        '--metrics-port=0',
        '--health-port=0',
        '--bind-address=127.0.0.1',
        '--log-level=debug',
      ],
      {
        name: `operator ${name}`,
        logFile: path.join(env.dir, `${name}.log`),
        readyLine: listening('health'),
        readyUrl: (r) => `http://127.0.0.1:${portOf(r, 'port')}/readyz`,
        timeoutMs: 30_000,
      },
    );
    const metrics = await kvroute.waitForLog(listening('metrics'));
    const p = { name, kvroute, proc: kvroute.child, metricsPort: portOf(metrics, 'port'), healthPort: portOf(kvroute.ready, 'port') };
    running.push(p);
    return p;
  }

  const leaderGauge = async (p: OperatorProcess) => {
    const text = await (await fetch(`http://127.0.0.1:${p.metricsPort}/metrics`)).text();
    return Number(/^kvroute_operator_leader (\d+)/m.exec(text)?.[1]);
  };
  const holder = async () =>
    (
      await client.get<{ spec: { holderIdentity?: string; leaseTransitions?: number } }>(
        resourcePath('coordination.k8s.io/v1', 'Lease', 'default', 'kvroute-operator'),
      )
    ).spec;
  const routerOf = (pool: string) =>
    client.get(resourcePath('apps/v1', 'Deployment', NS, `${pool}-router`)).then(
      () => true,
      (e: unknown) => (e instanceof KubeApiError && e.status === 404 ? false : Promise.reject(e)),
    );
  const createPool = (name: string) =>
    client.create({
      apiVersion: 'inference.kvroute.io/v1alpha1',
      kind: 'InferencePool',
      metadata: { name, namespace: NS },
      spec: { model: { name: 'm' }, selector: { matchLabels: { app: name } } },
    });
  const alive = (p: OperatorProcess) => p.proc.exitCode === null && p.proc.signalCode === null;
  const exited = (p: OperatorProcess) => new Promise((r) => (alive(p) ? p.proc.once('exit', r) : r(undefined)));

  beforeAll(async () => {
    env = await startKube();
    client = env.client;
    await installKvrouteCrds(client);
    await createNamespace(client, NS);
  }, 120_000);

  afterAll(async () => {
    for (const p of running) await p.kvroute.stop(2_000);
    await env?.stop();
  }, 60_000);

  it('elects exactly one leader, which alone reconciles, and fails over when the leader is killed', async () => {
    const a = await launch('a');
    const b = await launch('b');
    const [leader, follower] = await until(
      async () => {
        const [ga, gb] = await Promise.all([leaderGauge(a), leaderGauge(b)]);
        if (ga + gb !== 1) return undefined;
        return ga === 1 ? [a, b] : [b, a];
      },
      { message: 'one leader', timeoutMs: 15_000 },
    );
    expect(String((await holder()).holderIdentity)).toContain(`_${leader.proc.pid}`);

    await createPool('first');
    await until(() => routerOf('first'), { message: 'first pool reconciled by the leader' });
    expect(await leaderGauge(follower)).toBe(0);

    const t0 = Date.now();
    leader.proc.kill('SIGKILL');
    await exited(leader);
    await until(async () => (await leaderGauge(follower)) === 1, { message: 'follower takes over', timeoutMs: 15_000, intervalMs: 50 });
    const failoverMs = Date.now() - t0;
    expect(String((await holder()).holderIdentity)).toContain(`_${follower.proc.pid}`);
    // It cannot take over before the dead leader's lease has expired on its own clock.
    expect(failoverMs).toBeGreaterThanOrEqual(LEASE.durationMs - LEASE.retryPeriodMs * 2);
    await createPool('second');
    await until(() => routerOf('second'), { message: 'second pool reconciled by the new leader' });
    process.stdout.write(`failover after SIGKILL: ${failoverMs} ms (lease ${LEASE.durationMs} ms)\n`);
  });

  it('hands over at once when the leader shuts down gracefully and releases the lease', async () => {
    const current = running.find(alive)!;
    const next = await launch('c');
    expect(await leaderGauge(next)).toBe(0);
    const before = (await holder()).leaseTransitions ?? 0;
    const t0 = Date.now();
    current.proc.kill('SIGTERM');
    await exited(current);
    expect(current.proc.exitCode).toBe(0);
    await until(async () => (await leaderGauge(next)) === 1, { message: 'successor leads', timeoutMs: 10_000, intervalMs: 50 });
    const handoverMs = Date.now() - t0;
    expect(handoverMs).toBeLessThan(LEASE.durationMs);
    expect((await holder()).leaseTransitions).toBe(before + 1);
    process.stdout.write(`handover after SIGTERM: ${handoverMs} ms\n`);
  });
});
