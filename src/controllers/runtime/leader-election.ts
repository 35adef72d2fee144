// Leader election on a coordination.k8s.io/v1 Lease, following client-go: acquire when the lease is
// free or its holder has not renewed for leaseDuration (measured on our own clock from when we last saw
// the record change), renew every retryPeriod, give up leadership when renewals fail for renewDeadline,
// and release the lease on shutdown so a successor takes over at once.

import type { Logger } from '../../common/log.ts';
import { isConflict, isNotFound, resourcePath, type KubeApi } from '../../common/kube/kube-client.ts';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  log: Logger;
  now?: () => number;
}

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

type Lease = {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec?: LeaseSpec;
};

/** metav1.MicroTime wants exactly six fractional digits. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class LeaderElector {
  private readonly client: KubeApi;
  private readonly o: Required<Omit<LeaderElectionOptions, 'log' | 'now'>>;
  private readonly log: Logger;
  private readonly now: () => number;
  private observed: { holder?: string; renewTime?: string; at: number } = { at: 0 };
  /** When, on our clock, the live lease someone else holds expires unless we see it renewed first. */
  private othersLeaseExpiresAt: number | undefined;
  private stopped = false;
  private leading = false;
  private wake: (() => void) | undefined;

  constructor(client: KubeApi, options: LeaderElectionOptions) {
    this.client = client;
    this.o = {
      namespace: options.namespace,
      name: options.name,
      identity: options.identity,
      leaseDurationMs: options.leaseDurationMs ?? 10_000,
      renewDeadlineMs: options.renewDeadlineMs ?? 7_000,
      retryPeriodMs: options.retryPeriodMs ?? 1_500,
    };
    if (this.o.renewDeadlineMs >= this.o.leaseDurationMs) throw new Error('renewDeadline must be shorter than leaseDuration');
    this.log = options.log.child({ lease: `${options.namespace}/${options.name}`, identity: options.identity });
    this.now = options.now ?? Date.now;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  private path(): string {
    return resourcePath('coordination.k8s.io/v1', 'Lease', this.o.namespace, this.o.name);
  }

  private spec(prev: LeaseSpec | undefined, now: number): LeaseSpec {
    const mine = prev?.holderIdentity === this.o.identity;
    return {
      holderIdentity: this.o.identity,
      leaseDurationSeconds: Math.ceil(this.o.leaseDurationMs / 1000),
      acquireTime: mine && prev?.acquireTime ? prev.acquireTime : microTime(now),
      renewTime: microTime(now),
      leaseTransitions: mine ? (prev?.leaseTransitions ?? 0) : (prev?.leaseTransitions ?? 0) + (prev ? 1 : 0),
    };
  }

  /** One attempt to acquire or renew; false when someone else holds a live lease or we lost a race. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const now = this.now();
    let lease: Lease;
    try {
      lease = await this.client.get<Lease>(this.path());
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        await this.client.create({
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: this.o.name, namespace: this.o.namespace },
          spec: this.spec(undefined, now),
        } as Lease);
        return true;
      } catch (e) {
        if (isConflict(e) || (e as { status?: number }).status === 409) return false;
        throw e;
      }
    }
    const holder = lease.spec?.holderIdentity;
    if (holder !== this.observed.holder || lease.spec?.renewTime !== this.observed.renewTime) {
      this.observed = { holder, renewTime: lease.spec?.renewTime, at: now };
    }
    this.othersLeaseExpiresAt = undefined;
    if (holder && holder !== this.o.identity) {
      const durationMs = (lease.spec?.leaseDurationSeconds ?? Math.ceil(this.o.leaseDurationMs / 1000)) * 1000;
      if (this.observed.at + durationMs > now) {
        this.othersLeaseExpiresAt = this.observed.at + durationMs;
        return false;
      }
    }
    try {
      await this.client.replace({ ...lease, spec: this.spec(lease.spec, now) });
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  /**
   * The wait before the next acquire attempt: the jittered retry period, or less when the holder's lease
   * expires sooner (on our clock), so a dead leader is replaced as soon as its lease runs out rather than
   * up to a retry period later. A live leader renews first, and the attempt then just sees it renewed.
   */
  nextAttemptInMs(): number {
    const retry = this.o.retryPeriodMs * (1 + Math.random() * 0.2);
    if (this.othersLeaseExpiresAt === undefined) return retry;
    return Math.min(retry, Math.max(0, this.othersLeaseExpiresAt - this.now()) + 1);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  /**
   * Blocks until this process leads, calls onStarted, then renews until stop() or until renewals fail
   * for renewDeadline, when it calls onLost. Returns after leadership ends or stop() is called.
   */
  async run(onStarted: () => void | Promise<void>, onLost: () => void): Promise<void> {
    while (!this.stopped) {
      try {
        if (await this.tryAcquireOrRenew()) break;
      } catch (err) {
        this.othersLeaseExpiresAt = undefined;
        this.log.warn('lease acquire attempt failed', { err });
      }
      await this.sleep(this.nextAttemptInMs());
    }
    if (this.stopped) return;
    this.leading = true;
    this.log.info('became leader');
    await onStarted();
    let lastRenew = this.now();
    while (!this.stopped) {
      await this.sleep(this.o.retryPeriodMs);
      if (this.stopped) break;
      try {
        if (await this.tryAcquireOrRenew()) {
          lastRenew = this.now();
          continue;
        }
      } catch (err) {
        this.log.warn('lease renew failed', { err });
      }
      if (this.now() - lastRenew >= this.o.renewDeadlineMs) {
        this.leading = false;
        this.log.error('lost leadership: lease not renewed within renewDeadline');
        onLost();
        return;
      }
    }
  }

  /** Stops campaigning; if leading, releases the lease so a successor need not wait for it to expire. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.client.get<Lease>(this.path());
      if (lease.spec?.holderIdentity !== this.o.identity) return;
      const now = this.now();
      await this.client.replace({
        ...lease,
        spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(now), acquireTime: microTime(now) },
      });
      this.log.info('released leadership');
    } catch (err) {
      this.log.warn('could not release the lease', { err });
    }
  }
}
