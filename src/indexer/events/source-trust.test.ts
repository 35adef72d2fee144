import { describe, it, expect, afterEach } from '@jest/globals';
import { Registry } from 'prom-client';
import { silentLogger } from '../../common/log.ts';
import { until } from '../../../test/support/until.ts';
import { EventIngestor } from './ingestor.ts';
import { normalizeIp, podIdHost, SourceTrust, type TrustedPods } from './source-trust.ts';
import { RecordingSink, storedEvent, TestPublisher } from './test-helpers.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Pool pods by address, and which of them are Ready; tests move pods between the sets. */
class Pods implements TrustedPods {
  readonly pool = new Set<string>();
  readonly ready = new Set<string>();
  isPoolPod(ip: string) {
    return this.pool.has(ip);
  }
  isReady(ip: string) {
    return this.ready.has(ip);
  }
}

async function guardedIngestor(pods: Pods, unknownPeerWaitMs = 200) {
  const sink = new RecordingSink();
  const registry = new Registry();
  const trust = await SourceTrust.start(pods, silentLogger, registry, { unknownPeerWaitMs });
  const ingestor = new EventIngestor({ sink, log: silentLogger, registry });
  const bound = await ingestor.bind('tcp://127.0.0.1:0', trust);
  cleanups.push(async () => {
    await ingestor.close();
    await trust.close();
  });
  const counted = async (reason: string) => {
    const metric = await registry.getSingleMetric('kvroute_indexer_untrusted_source_total')!.get();
    return metric.values.find((v) => v.labels.reason === reason)?.value ?? 0;
  };
  return { sink, port: bound.split(':').pop()!, counted };
}

async function publisherFrom(from: string, port: string, topic: string): Promise<TestPublisher> {
  const p = await TestPublisher.start({ topic, connect: `tcp://${from}:0;127.0.0.1:${port}` });
  cleanups.push(() => p.close());
  return p;
}

const batch = () => [storedEvent([1n, 2n], null)];

describe('SourceTrust (central mode with discovery)', () => {
  it('refuses a connection from no pod of the pool at the handshake and applies nothing it sends, while a pool pod is applied', async () => {
    const pods = new Pods();
    pods.pool.add('127.0.0.2');
    pods.ready.add('127.0.0.2');
    const { sink, port, counted } = await guardedIngestor(pods);
    const real = await publisherFrom('127.0.0.2', port, 'kv@127.0.0.2@m');
    const fake = await publisherFrom('127.0.0.7', port, 'kv@127.0.0.2@m');
    await until(
      async () => {
        await real.publish(batch());
        await fake.publish([storedEvent([9n], null)]);
        return (sink.applied('127.0.0.2') > 0 && (await counted('peer_not_pool_pod')) === 1) || undefined;
      },
      { message: 'the real pod applied and the fake refused', timeoutMs: 10_000, intervalMs: 50 },
    );
    for (let i = 0; i < 5; i++) await fake.publish([storedEvent([9n], null)]);
    await real.publish(batch());
    await until(() => sink.applied('127.0.0.2') >= 2 || undefined, { message: 'a later real batch', timeoutMs: 5_000 });
    expect(sink.records.flatMap((r) => ('events' in r ? r.events : [])).some((e) => e.includes(':9'))).toBe(false);
  });

  it('admits an address that discovery learns while the handshake waits', async () => {
    const pods = new Pods();
    const { sink, port, counted } = await guardedIngestor(pods, 5_000);
    const pub = await publisherFrom('127.0.0.3', port, 'kv@127.0.0.3@m');
    await new Promise((resolve) => setTimeout(resolve, 300));
    pods.pool.add('127.0.0.3');
    pods.ready.add('127.0.0.3');
    await until(
      async () => {
        await pub.publish(batch());
        return sink.applied('127.0.0.3') > 0 || undefined;
      },
      { message: 'the late pod applied', timeoutMs: 10_000, intervalMs: 50 },
    );
    expect(await counted('peer_not_pool_pod')).toBe(0);
  });

  it('drops and counts messages whose topic names a pod that is not Ready, and applies them once it is', async () => {
    const pods = new Pods();
    pods.pool.add('127.0.0.4');
    const { sink, port, counted } = await guardedIngestor(pods);
    const pub = await publisherFrom('127.0.0.4', port, 'kv@127.0.0.4:8000@m');
    await until(
      async () => {
        await pub.publish(batch());
        return (await counted('topic_pod_not_ready')) > 0 || undefined;
      },
      { message: 'a dropped message', timeoutMs: 10_000, intervalMs: 50 },
    );
    expect(sink.records).toEqual([]);
    pods.ready.add('127.0.0.4');
    await until(
      async () => {
        await pub.publish(batch());
        return sink.applied('127.0.0.4:8000') > 0 || undefined;
      },
      { message: 'applied once Ready', timeoutMs: 10_000, intervalMs: 50 },
    );
  });

  it('reduces addresses and topic pod ids to the bare IP', () => {
    expect(normalizeIp('::ffff:10.0.0.5')).toBe('10.0.0.5');
    expect(normalizeIp('FD00::1')).toBe('fd00::1');
    expect(podIdHost('10.0.0.5')).toBe('10.0.0.5');
    expect(podIdHost('10.0.0.5:8000')).toBe('10.0.0.5');
    expect(podIdHost('[fd00::1]:8000')).toBe('fd00::1');
    expect(podIdHost('fd00::1')).toBe('fd00::1');
  });
});
