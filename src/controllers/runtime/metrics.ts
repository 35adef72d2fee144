// The operator's Prometheus metrics: reconcile counts, errors and durations per controller, work queue
// depth, adds and retries, and leadership, registered on the process registry.

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface ControllerMetrics {
  reconciles: Counter<'controller' | 'result'>;
  reconcileErrors: Counter<'controller'>;
  reconcileDuration: Histogram<'controller'>;
  queueDepth: Gauge<'controller'>;
  queueAdds: Counter<'controller'>;
  queueRetries: Counter<'controller'>;
  leader: Gauge;
}

export function createControllerMetrics(registry: Registry): ControllerMetrics {
  return {
    reconciles: new Counter({
      name: 'kvroute_operator_reconcile_total',
      help: 'reconciles by controller and result (success, error, requeue)',
      labelNames: ['controller', 'result'],
      registers: [registry],
    }),
    reconcileErrors: new Counter({
      name: 'kvroute_operator_reconcile_errors_total',
      help: 'reconciles that failed and were requeued with backoff',
      labelNames: ['controller'],
      registers: [registry],
    }),
    reconcileDuration: new Histogram({
      name: 'kvroute_operator_reconcile_duration_seconds',
      help: 'time one reconcile took',
      labelNames: ['controller'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: 'kvroute_operator_workqueue_depth',
      help: 'keys waiting in the work queue',
      labelNames: ['controller'],
      registers: [registry],
    }),
    queueAdds: new Counter({
      name: 'kvroute_operator_workqueue_adds_total',
      help: 'keys added to the work queue',
      labelNames: ['controller'],
      registers: [registry],
    }),
    queueRetries: new Counter({
      name: 'kvroute_operator_workqueue_retries_total',
      help: 'rate-limited re-adds after failures',
      labelNames: ['controller'],
      registers: [registry],
    }),
    leader: new Gauge({ name: 'kvroute_operator_leader', help: '1 while this process holds the leader lease', registers: [registry] }),
  };
}
