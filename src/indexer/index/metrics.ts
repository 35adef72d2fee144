// The index's Prometheus metrics (kvroute_indexer_*). Hot paths only bump plain numbers in
// IndexCounters; the metrics read them at scrape time through collect(), so ingestion pays nothing.

import { Counter, Gauge, type Registry } from 'prom-client';

export type DropReason = 'unknown_parent' | 'token_count_mismatch' | 'block_size_incompatible' | 'invalid_block_size' | 'too_many_media' | 'too_many_sources';
export const DROP_REASONS: readonly DropReason[] = ['unknown_parent', 'token_count_mismatch', 'block_size_incompatible', 'invalid_block_size', 'too_many_media', 'too_many_sources'];

export interface IndexCounters {
  keyEvictions: number;
  entryEvictions: number;
  dropped: Record<DropReason, number>;
}

export function newCounters(): IndexCounters {
  return { keyEvictions: 0, entryEvictions: 0, dropped: Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number> };
}

export interface IndexGaugeSource {
  keys(): number;
  entries(): number;
  bytes(): number;
  podBlocks(): Record<string, number>;
}

/** Registers the index metrics on `registry` (none when it is undefined). */
export function registerIndexMetrics(registry: Registry | undefined, counters: IndexCounters, source: IndexGaugeSource): void {
  if (!registry) return;
  const registers = [registry];
  new Gauge({ name: 'kvroute_indexer_keys', help: 'Block keys in the index.', registers, collect() { this.set(source.keys()); } });
  new Gauge({ name: 'kvroute_indexer_entries', help: '(block, source, tier) entries in the index.', registers, collect() { this.set(source.entries()); } });
  new Gauge({ name: 'kvroute_indexer_bytes', help: 'Bytes held by the index tables.', registers, collect() { this.set(source.bytes()); } });
  let reported: Record<string, number> = {};
  new Gauge({
    name: 'kvroute_indexer_pod_blocks',
    help: 'Entries held per pod (all data-parallel ranks and tiers).',
    labelNames: ['pod'],
    registers,
    collect() {
      const now = source.podBlocks();
      for (const pod of Object.keys(reported)) if (!(pod in now)) this.remove({ pod });
      for (const [pod, n] of Object.entries(now)) this.set({ pod }, n);
      reported = now;
    },
  });
  const seen = { key: 0, entry: 0 };
  new Counter({
    name: 'kvroute_indexer_evictions_total',
    help: 'Evictions to stay within bounds: kind=key (maxKeys, CLOCK) or entry (maxPodsPerKey).',
    labelNames: ['kind'],
    registers,
    collect() {
      this.inc({ kind: 'key' }, counters.keyEvictions - seen.key);
      this.inc({ kind: 'entry' }, counters.entryEvictions - seen.entry);
      seen.key = counters.keyEvictions;
      seen.entry = counters.entryEvictions;
    },
  });
  const seenDropped: Record<string, number> = {};
  new Counter({
    name: 'kvroute_indexer_dropped_blocks_total',
    help: 'Stored blocks the index could not place, by reason.',
    labelNames: ['reason'],
    registers,
    collect() {
      for (const reason of DROP_REASONS) {
        this.inc({ reason }, counters.dropped[reason] - (seenDropped[reason] ?? 0));
        seenDropped[reason] = counters.dropped[reason];
      }
    },
  });
}
