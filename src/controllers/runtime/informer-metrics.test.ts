import { describe, expect, it } from '@jest/globals';
import type { KubernetesObject } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import type { InformerOptions, SharedInformer } from '../../common/kube/informer.ts';
import { silentLogger } from '../../common/log.ts';
import { createInformerMetrics, withInformerMetrics } from './informer-metrics.ts';

/** A backend that keeps the options each informer was made with, so a test can fire their hooks as an informer would. */
function recordingBackend() {
  const made: InformerOptions[] = [];
  const informer = <T extends KubernetesObject>(options: InformerOptions): SharedInformer<T> => {
    made.push(options);
    return {
      name: options.name,
      synced: false,
      on: () => {},
      list: () => [],
      get: () => undefined,
      start: async () => {},
      stop: async () => {},
    };
  };
  return { made, backend: { client: 'the client', close: () => 'closed', informer } };
}

async function values(registry: Registry, name: string): Promise<Record<string, number>> {
  const metric = await registry.getSingleMetric(name)!.get();
  return Object.fromEntries(metric.values.map((v) => [Object.values(v.labels).join(','), v.value]));
}

describe('withInformerMetrics', () => {
  it('counts each informer’s first list, re-lists and restarts by name, and still calls the hooks it was given', async () => {
    const registry = new Registry();
    const { made, backend } = recordingBackend();
    const counted = withInformerMetrics(backend, createInformerMetrics(registry));
    const ownCalls: string[] = [];
    counted.informer({
      name: 'pools',
      path: '/p',
      log: silentLogger,
      onList: (relist) => ownCalls.push(`list ${relist}`),
      onRestart: () => ownCalls.push('restart'),
    });
    counted.informer({ name: 'models', path: '/m', log: silentLogger });
    const [pools, models] = made;
    pools!.onList!(false);
    pools!.onRestart!();
    pools!.onList!(true);
    pools!.onList!(true);
    models!.onList!(false);

    expect(await values(registry, 'kvroute_operator_informer_lists_total')).toEqual({
      'pools,initial': 1,
      'pools,relist': 2,
      'models,initial': 1,
    });
    expect(await values(registry, 'kvroute_operator_informer_restarts_total')).toEqual({ pools: 1 });
    expect(ownCalls).toEqual(['list false', 'restart', 'list true', 'list true']);
  });

  it('leaves the rest of the backend as it was', () => {
    const { backend } = recordingBackend();
    const counted = withInformerMetrics(backend, createInformerMetrics(new Registry()));
    expect(counted.client).toBe('the client');
    expect(counted.close()).toBe('closed');
  });
});
