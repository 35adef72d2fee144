import { afterEach, describe, expect, it } from '@jest/globals';
import { KubeApiError, resourcePath } from '../../common/kube/kube-client.ts';
import { silentLogger } from '../../common/log.ts';
import { fakeCluster } from '../testing/cluster.ts';
import type { FakeKube } from '../testing/fake-kube.ts';
import { LeaderElector, microTime } from './leader-election.ts';

interface Lease {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; resourceVersion: string };
  spec: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
}

const LEASE = resourcePath('coordination.k8s.io/v1', 'Lease', 'kvroute-system', 'kvroute-operator');
const lease = (kube: FakeKube) => kube.peek<Lease>(LEASE)!;

let clock = 1_700_000_000_000;
const electors: LeaderElector[] = [];
afterEach(async () => {
  await Promise.all(electors.splice(0).map((e) => e.stop()));
});

function elector(kube: FakeKube, identity: string, timing: { retryPeriodMs?: number } = {}): LeaderElector {
  const e = new LeaderElector(kube, {
    namespace: 'kvroute-system',
    name: 'kvroute-operator',
    identity,
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: timing.retryPeriodMs ?? 2_000,
    log: silentLogger,
    now: () => clock,
  });
  electors.push(e);
  return e;
}

describe('LeaderElector', () => {
  it('acquires a free lease by creating it, with its identity, duration and times', async () => {
    const kube = await fakeCluster({ namespaces: ['kvroute-system'] });
    expect(await elector(kube, 'a').tryAcquireOrRenew()).toBe(true);
    expect(lease(kube).spec).toEqual({
      holderIdentity: 'a',
      leaseDurationSeconds: 15,
      acquireTime: microTime(clock),
      renewTime: microTime(clock),
      leaseTransitions: 0,
    });
    expect(microTime(clock)).toMatch(/\.\d{6}Z$/);
  });

  it('renews its own lease: renewTime moves, acquireTime and the transition count stay', async () => {
    const kube = await fakeCluster({ namespaces: ['kvroute-system'] });
    const a = elector(kube, 'a');
    await a.tryAcquireOrRenew();
    const acquired = clock;
    clock += 2_000;
    expect(await a.tryAcquireOrRenew()).toBe(true);
    expect(lease(kube).spec).toMatchObject({
      holderIdentity: 'a',
      acquireTime: microTime(acquired),
      renewTime: microTime(clock),
      leaseTransitions: 0,
    });
  });

  it('leaves a lease alone while its holder renews it, however long that goes on', async () => {
    const kube = await fakeCluster({ namespaces: ['kvroute-system'] });
    const a = elector(kube, 'a');
    const b = elector(kube, 'b');
    await a.tryAcquireOrRenew();
    for (let i = 0; i < 10; i++) {
      clock += 5_000;
      expect(await b.tryAcquireOrRenew()).toBe(false);
      expect(await a.tryAcquireOrRenew()).toBe(true);
    }
    expect(lease(kube).spec.holderIdentity).toBe('a');
  });

  it('takes over a lease once it has seen no renewal for leaseDuration on its own clock, counting a transition', async () => {
    const kube = await fakeCluster({ namespaces: ['kvroute-system'] });
    await elector(kube, 'a').tryAcquireOrRenew();
    // b first looks long after the last renewal: the lease counts as expired only leaseDuration after b first saw it.
    clock += 60_000;
    const b = elector(kube, 'b');
    expect(await b.tryAcquireOrRenew()).toBe(false);
    clock += 14_999;
    expect(await b.tryAcquireOrRenew()).toBe(false);
    clock += 1;
    expect(await b.tryAcquireOrRenew()).toBe(true);
    expect(lease(kube).spec).toMatchObject({ holderIdentity: 'b', acquireTime: microTime(clock), leaseTransitions: 1 });
  });

  it('loses the race when another candidate writes the lease between its read and its update', async () => {
    const kube = await fakeCluster({ namespaces: ['kvroute-system'] });
    const a = elector(kube, 'a');
    await a.tryAcquireOrRenew();
    let raced = false;
    kube.react((req) => {
      if (req.method !== 'PUT' || raced) return undefined;
      raced = true;
      // Another writer gets in first: the update below then carries a stale resourceVersion.
      const current = lease(kube);
      void kube.replace({ ...current, spec: { ...current.spec, holderIdentity: 'c' } });
      return undefined;
    });
    clock += 2_000;
    expect(await a.tryAcquireOrRenew()).toBe(false);
    expect(lease(kube).spec.holderIdentity).toBe('c');
  });

  it('runs onStarted once it leads, and calls onLost when renewals fail for renewDeadline', async () => {
    const kube = await fakeCluster({ namespaces: ['kvroute-system'] });
    const a = elector(kube, 'a', { retryPeriodMs: 5 });
    let started!: () => void;
    let lost!: () => void;
    const leading = new Promise<void>((r) => (started = r));
    const gone = new Promise<void>((r) => (lost = r));
    const running = a.run(started, lost);
    await leading;
    expect(a.isLeader).toBe(true);

    // Each failed renewal takes 4 s of the elector's clock: the third one is past renewDeadline (10 s).
    let failed = 0;
    kube.react((req) => {
      if (req.path !== LEASE) return undefined;
      failed++;
      clock += 4_000;
      return new KubeApiError(503, 'ServiceUnavailable', 'apiserver is shutting down');
    });
    await gone;
    expect(failed).toBe(3);
    await running;
    expect(a.isLeader).toBe(false);
  });

  it('releases the lease on stop, so a successor takes over without waiting for it to expire', async () => {
    const kube = await fakeCluster({ namespaces: ['kvroute-system'] });
    const a = elector(kube, 'a', { retryPeriodMs: 5 });
    let started!: () => void;
    const leading = new Promise<void>((r) => (started = r));
    const running = a.run(started, () => {});
    await leading;
    await a.stop();
    await running;
    expect(lease(kube).spec).toMatchObject({ holderIdentity: '', leaseDurationSeconds: 1 });

    const b = elector(kube, 'b');
    expect(await b.tryAcquireOrRenew()).toBe(true);
    expect(lease(kube).spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
  });
});

describe('LeaderElector waiting for a dead leader', () => {
  it('tries again the moment the holder’s lease expires on its clock, not a retry period later', async () => {
    const kube = await fakeCluster({ namespaces: ['kvroute-system'] });
    const options = {
      namespace: 'kvroute-system',
      name: 'kvroute-operator',
      leaseDurationMs: 1_000,
      renewDeadlineMs: 500,
      log: silentLogger,
    };
    // a takes the lease and dies (never renews); b's retry period is far longer than the test.
    await new LeaderElector(kube, { ...options, identity: 'a', retryPeriodMs: 60_000 }).tryAcquireOrRenew();
    const b = new LeaderElector(kube, { ...options, identity: 'b', retryPeriodMs: 60_000 });
    electors.push(b);
    const t0 = Date.now();
    let started!: () => void;
    const leading = new Promise<void>((r) => (started = r));
    const running = b.run(started, () => {});
    await leading;
    const tookMs = Date.now() - t0;
    expect(tookMs).toBeGreaterThanOrEqual(1_000);
    expect(tookMs).toBeLessThan(10_000);
    expect(lease(kube).spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
    await b.stop();
    await running;
  });

  it('waits a retry period between attempts while the holder keeps renewing, and at most until the lease it saw expires', async () => {
    const kube = await fakeCluster({ namespaces: ['kvroute-system'] });
    await elector(kube, 'a').tryAcquireOrRenew();
    const b = elector(kube, 'b');
    expect(await b.tryAcquireOrRenew()).toBe(false);
    // Just seen renewed: the retry period (2 s, up to 20 % jitter) comes first.
    expect(b.nextAttemptInMs()).toBeGreaterThanOrEqual(2_000);
    expect(b.nextAttemptInMs()).toBeLessThanOrEqual(2_400);
    // 14.5 s later on b's clock without a renewal: the lease (15 s) runs out in 0.5 s.
    clock += 14_500;
    expect(await b.tryAcquireOrRenew()).toBe(false);
    expect(b.nextAttemptInMs()).toBe(501);
  });
});
