import { describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import { silentLogger } from '../../common/log.ts';
import { manualClock } from '../testing/clock.ts';
import { Controller, type ReconcileResult } from './controller.ts';
import { createControllerMetrics } from './metrics.ts';

/** A reconcile the test drives: each call waits until the test settles it, and calls are announced in order. */
function scriptedReconcile() {
  const calls: { key: string; settle: (result?: ReconcileResult | Error) => void }[] = [];
  const waiting: ((n: number) => void)[] = [];
  let running = 0;
  let maxRunning = 0;
  const reconcile = (key: string) =>
    new Promise<ReconcileResult | void>((resolve, reject) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      calls.push({
        key,
        settle: (result) => {
          running--;
          if (result instanceof Error) reject(result);
          else resolve(result);
        },
      });
      for (const w of waiting.splice(0)) w(calls.length);
    });
  /** Resolves once the n-th call (1-based) has started. */
  const call = (n: number) =>
    new Promise<(typeof calls)[number]>((resolve) => {
      const check = () => (calls.length >= n ? resolve(calls[n - 1]!) : waiting.push(check));
      check();
    });
  return { reconcile, calls, call, maxRunning: () => maxRunning };
}

function controller(reconcile: (key: string) => Promise<ReconcileResult | void>, registry = new Registry()) {
  const clock = manualClock();
  const c = new Controller({ name: 'test', reconcile, workers: 3, log: silentLogger, metrics: createControllerMetrics(registry), clock });
  return { c, clock, registry };
}

/** Lets the workers run what is already settled (a failed reconcile's requeue); no real time passes for the queue. */
const drain = () => new Promise<void>((resolve) => setImmediate(resolve));

const counter = async (registry: Registry, name: string, labels: Record<string, string>) =>
  (await registry.getSingleMetric(name)!.get()).values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value ?? 0;

describe('Controller', () => {
  it('never reconciles one key in two workers at once, and runs it once more for adds that arrive meanwhile', async () => {
    const s = scriptedReconcile();
    const { c } = controller(s.reconcile);
    c.start();
    c.enqueue('ml/a');
    const first = await s.call(1);
    c.enqueue('ml/a');
    c.enqueue('ml/a');
    c.enqueue('ml/b');
    const other = await s.call(2);
    expect(other.key).toBe('ml/b');
    first.settle();
    const again = await s.call(3);
    expect(again.key).toBe('ml/a');
    other.settle();
    again.settle();
    await c.stop();
    expect(s.calls.map((x) => x.key)).toEqual(['ml/a', 'ml/b', 'ml/a']);
    expect(s.maxRunning()).toBe(2);
  });

  it('retries a failed key after an exponential backoff and forgets its failures once it succeeds', async () => {
    const s = scriptedReconcile();
    const { c, clock, registry } = controller(s.reconcile);
    c.start();
    c.enqueue('ml/a');
    (await s.call(1)).settle(new Error('apply failed'));
    await drain();
    expect(c.queue.limiter.retries('ml/a')).toBe(1);
    clock.advance(4);
    expect(s.calls).toHaveLength(1);
    clock.advance(1);
    (await s.call(2)).settle(new Error('apply failed again'));
    await drain();
    clock.advance(9);
    expect(s.calls).toHaveLength(2);
    clock.advance(1);
    (await s.call(3)).settle();
    await c.stop();
    expect(c.queue.limiter.retries('ml/a')).toBe(0);
    expect(await counter(registry, 'kvroute_operator_reconcile_total', { result: 'error' })).toBe(2);
    expect(await counter(registry, 'kvroute_operator_reconcile_total', { result: 'success' })).toBe(1);
  });

  it('runs a key again once the requeueAfterMs it asked for has passed', async () => {
    const s = scriptedReconcile();
    const { c, clock, registry } = controller(s.reconcile);
    c.start();
    c.enqueue('ml/a');
    (await s.call(1)).settle({ requeueAfterMs: 30_000 });
    await drain();
    expect(clock.pending).toBe(1);
    clock.advance(29_999);
    expect(s.calls).toHaveLength(1);
    clock.advance(1);
    (await s.call(2)).settle();
    await c.stop();
    expect(await counter(registry, 'kvroute_operator_reconcile_total', { result: 'requeue' })).toBe(1);
  });

  it('on stop waits for the reconcile in flight and takes no further key', async () => {
    const s = scriptedReconcile();
    const { c } = controller(s.reconcile);
    c.start();
    c.enqueue('ml/a');
    const inFlight = await s.call(1);
    let stopped = false;
    const stopping = c.stop().then(() => (stopped = true));
    c.enqueue('ml/b');
    await drain();
    expect(stopped).toBe(false);
    inFlight.settle();
    await stopping;
    expect(s.calls.map((x) => x.key)).toEqual(['ml/a']);
  });
});
