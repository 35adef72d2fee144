// Counts what the operator's informers do against the API server: each LIST (the first, then every
// re-list after a watch expired with 410 Gone) and each restart after a failed list/watch, so a chaos
// run or a dashboard can tell a watch that resumed from one that had to start over.

import type { KubernetesObject } from '@kubernetes/client-node';
import { Counter, type Registry } from 'prom-client';
import type { InformerOptions, SharedInformer } from '../../common/kube/informer.ts';

export interface InformerMetrics {
  lists: Counter<'informer' | 'kind'>;
  restarts: Counter<'informer'>;
}

export function createInformerMetrics(registry: Registry): InformerMetrics {
  return {
    lists: new Counter({
      name: 'kvroute_operator_informer_lists_total',
      help: 'LIST requests by informer: kind="initial" for the first, kind="relist" after a watch expired (410 Gone) or a list failed',
      labelNames: ['informer', 'kind'],
      registers: [registry],
    }),
    restarts: new Counter({
      name: 'kvroute_operator_informer_restarts_total',
      help: 'list/watch restarts with backoff after a failure (API server unreachable, kind not served)',
      labelNames: ['informer'],
      registers: [registry],
    }),
  };
}

/** Anything that makes informers from options (the operator's HTTP backend, or the in-memory one in tests). */
export interface InformerFactory {
  informer<T extends KubernetesObject>(options: InformerOptions): SharedInformer<T>;
}

/** The same backend, with every informer it makes counting its lists and restarts (and still calling the caller's hooks). */
export function withInformerMetrics<K extends InformerFactory>(kube: K, metrics: InformerMetrics): K {
  // Inherits everything else (client, close) from the backend, whether a plain object or a class instance.
  const counted = Object.create(kube) as K;
  counted.informer = <T extends KubernetesObject>(options: InformerOptions): SharedInformer<T> =>
    kube.informer<T>({
      ...options,
      onList: (relist) => {
        metrics.lists.inc({ informer: options.name, kind: relist ? 'relist' : 'initial' });
        options.onList?.(relist);
      },
      onRestart: () => {
        metrics.restarts.inc({ informer: options.name });
        options.onRestart?.();
      },
    });
  return counted;
}
