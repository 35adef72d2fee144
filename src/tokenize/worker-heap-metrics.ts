// Heap gauges for the tokenizer worker threads. Their heaps (segment caches, tokenizer tables) are part
// of the process's RSS but not of prom-client's nodejs_heap_* gauges, which see only the main thread.

import type { Worker } from 'node:worker_threads';
import { Gauge, type Registry } from 'prom-client';

type HeapStats = Awaited<ReturnType<Worker['getHeapStatistics']>>;

/**
 * Registers kvroute_tokenizer_worker_heap_{used,size}_bytes{worker} on `registry`, read from each worker
 * at scrape time. `workers` lists the pool's workers by index, null where one is not running.
 */
export function registerWorkerHeapMetrics(registry: Registry, workers: () => Array<Worker | null>): void {
  // One read per scrape serves both gauges: the registry collects them concurrently.
  let reading: Promise<Array<HeapStats | null>> | null = null;
  const read = (): Promise<Array<HeapStats | null>> => {
    reading ??= Promise.all(workers().map((w) => (w ? w.getHeapStatistics().catch(() => null) : Promise.resolve(null)))).finally(() => {
      reading = null;
    });
    return reading;
  };
  const gauge = (name: string, help: string, value: (s: HeapStats) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['worker'],
      registers: [registry],
      async collect() {
        const stats = await read();
        this.reset();
        stats.forEach((s, i) => {
          if (s) this.set({ worker: String(i) }, value(s));
        });
      },
    });
  gauge('kvroute_tokenizer_worker_heap_used_bytes', 'V8 heap used by each tokenizer worker thread.', (s) => s.used_heap_size);
  gauge(
    'kvroute_tokenizer_worker_heap_size_bytes',
    'V8 heap each tokenizer worker thread has reserved (used or not): its share of the resident memory.',
    (s) => s.total_heap_size,
  );
}
