import { describe, it, expect } from '@jest/globals';
import type { V1Pod } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { parseIndexerConfig } from '../../api/indexer-config.ts';
import type { InformerHandler } from '../../common/kube/informer.ts';
import { createLogger } from '../../common/log.ts';
import { discoveryMetrics, PodDiscovery, type PodSource, type PodSubscriptions } from './pod-discovery.ts';
import { until } from '../../../test/support/until.ts';

const log = createLogger({ level: 'error', component: 'test', write: () => {} });

/** An in-memory pod list: start() delivers the listed pods, then resolves, as the informer does. */
class ListedPods implements PodSource {
  readonly handlers: InformerHandler<V1Pod>[] = [];
  readonly initial: V1Pod[];
  release: () => void = () => {};
  private readonly gate: Promise<void>;
  constructor(initial: V1Pod[]) {
    this.initial = initial;
    this.gate = new Promise((r) => (this.release = r));
  }
  on(handler: InformerHandler<V1Pod>): void {
    this.handlers.push(handler);
  }
  async start(): Promise<void> {
    await this.gate;
    for (const p of this.initial) this.emit('add', p);
  }
  async stop(): Promise<void> {}
  emit(event: 'add' | 'update' | 'delete', p: V1Pod): void {
    for (const h of this.handlers) h(event, p);
  }
}

/** Records what discovery asked for, in order. */
class RecordingSubscriptions implements PodSubscriptions {
  readonly calls: string[] = [];
  async connect(podId: string, endpoint: string, replayEndpoint: string | undefined): Promise<void> {
    this.calls.push(`connect ${podId} ${endpoint} ${replayEndpoint ?? '-'}`);
  }
  async disconnect(podId: string): Promise<void> {
    this.calls.push(`disconnect ${podId}`);
  }
}

const pod = (name: string, ip: string, ready: boolean): V1Pod => ({
  metadata: { name, namespace: 'ml', uid: name },
  status: { podIP: ip, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
});

function discoveryOf(source: PodSource, subs: PodSubscriptions, zmq: Record<string, unknown>) {
  const config = parseIndexerConfig({ zmq: { discovery: { namespace: 'ml', ...zmq } } }).zmq.discovery!;
  const registry = new Registry();
  return { registry, discovery: new PodDiscovery({ config, source, subscriptions: subs, log, metrics: discoveryMetrics(registry) }) };
}

describe('PodDiscovery', () => {
  it('is synced only after the first list is applied, with every Ready pod connected by IP', async () => {
    const source = new ListedPods([pod('a', '10.0.0.1', true), pod('b', '10.0.0.2', false)]);
    const subs = new RecordingSubscriptions();
    const { discovery, registry } = discoveryOf(source, subs, { port: 6000, replayPort: null });
    const started = discovery.start();
    expect(discovery.synced).toBe(false);
    source.release();
    await started;
    expect(discovery.synced).toBe(true);
    expect(subs.calls).toEqual(['connect 10.0.0.1 tcp://10.0.0.1:6000 -']);
    expect((await registry.getSingleMetric('kvroute_indexer_discovered_pods')!.get()).values[0]!.value).toBe(1);
    await discovery.stop();
  });

  it('connects a pod that turns Ready, and drops one deleted or NotReady past its grace, in order', async () => {
    const source = new ListedPods([pod('a', '10.0.0.1', true), pod('b', '10.0.0.2', true)]);
    const subs = new RecordingSubscriptions();
    const { discovery, registry } = discoveryOf(source, subs, { notReadyGraceSeconds: 0.05 });
    source.release();
    await discovery.start();
    source.emit('update', pod('c', '10.0.0.3', true));
    source.emit('delete', pod('a', '10.0.0.1', true));
    source.emit('update', pod('b', '10.0.0.2', false));
    await until(() => subs.calls.includes('disconnect 10.0.0.2'), { message: 'b dropped after its grace', timeoutMs: 5_000 });
    expect(subs.calls).toEqual([
      'connect 10.0.0.1 tcp://10.0.0.1:5557 tcp://10.0.0.1:5558',
      'connect 10.0.0.2 tcp://10.0.0.2:5557 tcp://10.0.0.2:5558',
      'connect 10.0.0.3 tcp://10.0.0.3:5557 tcp://10.0.0.3:5558',
      'disconnect 10.0.0.1',
      'disconnect 10.0.0.2',
    ]);
    expect(discovery.connected()).toEqual(['10.0.0.3']);
    const disconnects = (await registry.getSingleMetric('kvroute_indexer_discovery_disconnects_total')!.get()).values;
    expect(Object.fromEntries(disconnects.map((v) => [v.labels.reason, v.value]))).toEqual({ gone: 1, not_ready: 1 });
    await discovery.stop();
  });

  it('applies every change made in one tick, even one arriving as a plan with nothing to do finishes', async () => {
    const source = new ListedPods([]);
    const subs = new RecordingSubscriptions();
    const { discovery } = discoveryOf(source, subs, {});
    source.release();
    await discovery.start();
    source.emit('add', { metadata: { name: 'c', namespace: 'ml', uid: 'c' }, status: {} });
    source.emit('update', pod('c', '10.0.0.3', true));
    source.emit('update', pod('c', '10.0.0.3', true));
    await until(() => discovery.connected().length === 1, { message: 'c connected', timeoutMs: 2_000 });
    expect(subs.calls).toEqual(['connect 10.0.0.3 tcp://10.0.0.3:5557 tcp://10.0.0.3:5558']);
    await discovery.stop();
  });

  it('subscribes every data-parallel rank of a pod at port + rank, and drops the pod once', async () => {
    const source = new ListedPods([pod('a', '10.0.0.1', true)]);
    const subs = new RecordingSubscriptions();
    const { discovery, registry } = discoveryOf(source, subs, { port: 6000, replayPort: 6100, dataParallelSize: 2 });
    source.release();
    await discovery.start();
    source.emit('delete', pod('a', '10.0.0.1', true));
    await until(() => discovery.connected().length === 0, { message: 'a dropped', timeoutMs: 2_000 });
    expect(subs.calls).toEqual([
      'connect 10.0.0.1 tcp://10.0.0.1:6000 tcp://10.0.0.1:6100',
      'connect 10.0.0.1 tcp://10.0.0.1:6001 tcp://10.0.0.1:6101',
      'disconnect 10.0.0.1',
    ]);
    expect((await registry.getSingleMetric('kvroute_indexer_discovery_connects_total')!.get()).values[0]!.value).toBe(1);
    await discovery.stop();
  });

  it('undoes the ranks already subscribed when a later rank fails, and retries the whole pod at the next change', async () => {
    const source = new ListedPods([pod('a', '10.0.0.1', true)]);
    const subs = new RecordingSubscriptions();
    let failRank1 = true;
    const flaky: PodSubscriptions = {
      connect: async (id, ep, replay) => {
        if (failRank1 && ep.endsWith(':6001')) throw new Error('socket refused');
        await subs.connect(id, ep, replay);
      },
      disconnect: (id) => subs.disconnect(id),
    };
    const { discovery, registry } = discoveryOf(source, flaky, { port: 6000, replayPort: null, dataParallelSize: 2 });
    source.release();
    await discovery.start();
    expect(discovery.connected()).toEqual([]);
    expect(subs.calls).toEqual(['connect 10.0.0.1 tcp://10.0.0.1:6000 -', 'disconnect 10.0.0.1']);
    expect((await registry.getSingleMetric('kvroute_indexer_discovery_errors_total')!.get()).values[0]!.value).toBe(1);
    failRank1 = false;
    source.emit('update', pod('a', '10.0.0.1', true));
    await until(() => discovery.connected().length === 1, { message: 'a connected on retry' });
    expect(subs.calls.slice(2)).toEqual(['connect 10.0.0.1 tcp://10.0.0.1:6000 -', 'connect 10.0.0.1 tcp://10.0.0.1:6001 -']);
    await discovery.stop();
  });

  it('counts a failed connect and retries it at the next change', async () => {
    const source = new ListedPods([pod('a', '10.0.0.1', true)]);
    let fail = true;
    const subs = new RecordingSubscriptions();
    const flaky: PodSubscriptions = {
      connect: async (id, ep, replay) => {
        if (fail) throw new Error('socket refused');
        await subs.connect(id, ep, replay);
      },
      disconnect: (id) => subs.disconnect(id),
    };
    const { discovery, registry } = discoveryOf(source, flaky, {});
    source.release();
    await discovery.start();
    expect(discovery.connected()).toEqual([]);
    expect((await registry.getSingleMetric('kvroute_indexer_discovery_errors_total')!.get()).values[0]!.value).toBe(1);
    fail = false;
    source.emit('update', pod('a', '10.0.0.1', true));
    await until(() => discovery.connected().length === 1, { message: 'a connected on retry' });
    await discovery.stop();
  });
});
