// The index's Prometheus metrics (kvroute_indexer_*). Hot paths only bump plain numbers in
// IndexCounters; the metrics read them at scrape time through collect(), so ingestion pays nothing.

import { Counter, Gauge, type Registry } from 'prom-client';

export type DropReason =
  | 'unknown_parent'
  | 'token_count_mismatch'
  | 'block_size_incompatible'
  | 'invalid_block_size'
  | 'too_many_media'
  | 'too_many_sources'
  | 'sparse_group'
  | 'pod_block_limit';
const DROP_REASONS: readonly DropReason[] = [
  'unknown_parent',
  'token_count_mismatch',
  'block_size_incompatible',
  'invalid_block_size',
  'too_many_media',
  'too_many_sources',
  'sparse_group',
  'pod_block_limit',
];

/** Why a score request got no scores without any pod lacking the prefix. */
export type UnscoredReason = 'lora_path_unknown';
const UNSCORED_REASONS: readonly UnscoredReason[] = ['lora_path_unknown'];

export interface IndexCounters {
  keyEvictions: number;
  entryEvictions: number;
  dropped: Record<DropReason, number>;
  unscored: Record<UnscoredReason, number>;
}

function zeros<R extends string>(reasons: readonly R[]): Record<R, number> {
  return Object.fromEntries(reasons.map((r) => [r, 0])) as Record<R, number>;
}

export function newCounters(): IndexCounters {
  return { keyEvictions: 0, entryEvictions: 0, dropped: zeros(DROP_REASONS), unscored: zeros(UNSCORED_REASONS) };
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
  new Gauge({
    name: 'kvroute_indexer_keys',
    help: 'Block keys in the index.',
    registers,
    collect() {
      this.set(source.keys());
    },
  });
  new Gauge({
    name: 'kvroute_indexer_entries',
    help: '(block, source, tier) entries in the index.',
    registers,
    collect() {
      this.set(source.entries());
    },
  });
  new Gauge({
    name: 'kvroute_indexer_bytes',
    help: 'Bytes held by the index tables.',
    registers,
    collect() {
      this.set(source.bytes());
    },
  });
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
  reasonCounter(
    registry,
    'kvroute_indexer_dropped_blocks_total',
    'Stored blocks the index could not place, by reason.',
    DROP_REASONS,
    counters.dropped,
  );
  reasonCounter(
    registry,
    'kvroute_indexer_unscored_requests_total',
    'Score requests answered with no scores because the index could not key them, by reason.',
    UNSCORED_REASONS,
    counters.unscored,
  );
}

/** A counter by reason that reads a plain-number record at scrape time. */
function reasonCounter<R extends string>(
  registry: Registry,
  name: string,
  help: string,
  reasons: readonly R[],
  counts: Record<R, number>,
): void {
  const seen: Record<string, number> = {};
  new Counter({
    name,
    help,
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      for (const reason of reasons) {
        this.inc({ reason }, counts[reason] - (seen[reason] ?? 0));
        seen[reason] = counts[reason];
      }
    },
  });
}
