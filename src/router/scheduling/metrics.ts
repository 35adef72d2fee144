// The scheduler's Prometheus metrics: per-plugin latency, scorer abstentions, skipped filters,
// indexer failures and load-bound diversions. Registered once per registry and reused by every
// scheduler built on it, since a config reload builds a new scheduler on the same registry.

import { Counter, Histogram, type Registry } from 'prom-client';

/** Plugin latencies run from microseconds (queue scorer) to tens of milliseconds (an indexer call). */
const PLUGIN_BUCKETS = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];

export interface SchedulerMetrics {
  pluginDuration: Histogram<'plugin_type' | 'plugin_name'>;
  abstentions: Counter<'plugin_type' | 'plugin_name'>;
  filterSkipped: Counter<'plugin_type' | 'plugin_name'>;
  pluginErrors: Counter<'plugin_type' | 'plugin_name'>;
  indexerErrors: Counter<'reason'>;
  loadBoundDiversions: Counter;
}

function getOrCreate<T>(registry: Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}

export function schedulerMetrics(registry: Registry): SchedulerMetrics {
  const registers = [registry];
  const pluginLabels = ['plugin_type', 'plugin_name'] as const;
  return {
    pluginDuration: getOrCreate(
      registry,
      'kvroute_router_plugin_duration_seconds',
      () =>
        new Histogram({
          name: 'kvroute_router_plugin_duration_seconds',
          help: 'Time one scheduling plugin took for one request',
          labelNames: pluginLabels,
          buckets: PLUGIN_BUCKETS,
          registers,
        }),
    ),
    abstentions: getOrCreate(
      registry,
      'kvroute_router_scorer_abstentions_total',
      () =>
        new Counter({
          name: 'kvroute_router_scorer_abstentions_total',
          help: 'Endpoints a scorer could not score (stale metrics, indexer down), which then got 0 from it',
          labelNames: pluginLabels,
          registers,
        }),
    ),
    filterSkipped: getOrCreate(
      registry,
      'kvroute_router_filter_skipped_total',
      () =>
        new Counter({
          name: 'kvroute_router_filter_skipped_total',
          help: 'Requests for which a filter was skipped because it would have removed every endpoint',
          labelNames: pluginLabels,
          registers,
        }),
    ),
    pluginErrors: getOrCreate(
      registry,
      'kvroute_router_plugin_errors_total',
      () =>
        new Counter({
          name: 'kvroute_router_plugin_errors_total',
          help: 'Unexpected errors thrown by a scheduling plugin (the request is still routed)',
          labelNames: pluginLabels,
          registers,
        }),
    ),
    indexerErrors: getOrCreate(
      registry,
      'kvroute_router_indexer_errors_total',
      () =>
        new Counter({
          name: 'kvroute_router_indexer_errors_total',
          help: 'Indexer score calls that failed or timed out; the precise prefix scorers abstained',
          labelNames: ['reason'] as const,
          registers,
        }),
    ),
    loadBoundDiversions: getOrCreate(
      registry,
      'kvroute_router_load_bound_diversions_total',
      () =>
        new Counter({
          name: 'kvroute_router_load_bound_diversions_total',
          help: 'Requests whose best prefix-cache endpoint was removed by the load bound, so they went to another endpoint',
          registers,
        }),
    ),
  };
}
