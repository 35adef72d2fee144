// Prometheus metrics of KV-event ingestion, registered once per registry (a second ingestor on the
// same registry shares them).

import { Counter, Gauge, type Registry } from 'prom-client';

export interface IngestMetrics {
  events: Counter<'type'>;
  batches: Counter;
  blocks: Counter<'type'>;
  malformed: Counter<'reason'>;
  skipped: Counter<'kind'>;
  gaps: Counter;
  replays: Counter<'result'>;
  catchUps: Counter<'result'>;
  resets: Counter<'reason'>;
  dropped: Counter<'reason'>;
  sinkErrors: Counter;
  expired: Counter;
  lag: Gauge<'source'>;
  queued: Gauge;
}

function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: L[] = []): Counter<L> {
  return (registry.getSingleMetric(name) as Counter<L> | undefined) ?? new Counter({ name, help, labelNames, registers: [registry] });
}

function gauge<L extends string>(registry: Registry, name: string, help: string, labelNames: L[] = []): Gauge<L> {
  return (registry.getSingleMetric(name) as Gauge<L> | undefined) ?? new Gauge({ name, help, labelNames, registers: [registry] });
}

export function ingestMetrics(registry: Registry): IngestMetrics {
  return {
    events: counter(registry, 'kvroute_indexer_events_total', 'KV events applied, by type.', ['type']),
    batches: counter(registry, 'kvroute_indexer_event_batches_total', 'KV-event batches applied.'),
    blocks: counter(registry, 'kvroute_indexer_event_blocks_total', 'Blocks named by applied events, by event type.', ['type']),
    malformed: counter(registry, 'kvroute_indexer_malformed_messages_total', 'Messages rejected, by reason.', ['reason']),
    skipped: counter(registry, 'kvroute_indexer_skipped_unknown_total', 'Unknown event fields and event types skipped.', ['kind']),
    gaps: counter(registry, 'kvroute_indexer_sequence_gaps_total', "Gaps detected in a source's sequence numbers."),
    replays: counter(registry, 'kvroute_indexer_replays_total', 'Gap recoveries through the replay endpoint, by result.', ['result']),
    catchUps: counter(
      registry,
      'kvroute_indexer_catch_up_replays_total',
      'Replays from 0 on first contact with a publisher (or after it restarted), by result.',
      ['result'],
    ),
    resets: counter(registry, 'kvroute_indexer_source_resets_total', 'Sources reset (their entries forgotten), by reason.', ['reason']),
    dropped: counter(registry, 'kvroute_indexer_dropped_batches_total', 'Well-formed batches not applied, by reason.', ['reason']),
    sinkErrors: counter(registry, 'kvroute_indexer_sink_errors_total', 'Batches the index failed to apply (the source is reset).'),
    expired: counter(registry, 'kvroute_indexer_sources_expired_total', 'Sources forgotten after sending nothing for the idle timeout.'),
    lag: gauge(registry, 'kvroute_indexer_source_lag_seconds', 'Age of the last applied batch of a source (now - publisher ts).', [
      'source',
    ]),
    queued: gauge(registry, 'kvroute_indexer_queued_batches', 'Batches decoded and waiting to be applied.'),
  };
}
