// The vLLM metrics a router scrapes, with vLLM's names, labels (model_name, engine), meanings and
// histogram buckets (vllm/v1/metrics/loggers.py and buckets.py in 0.33). prom-client does not add
// `_total` to counters the way Python's client does, so counter names carry it explicitly.

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { EngineObserver } from './engine.ts';
import type { SimRequest } from './request.ts';
import type { Scheduler } from './scheduler.ts';

const TIME_TO_FIRST_TOKEN_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
const INTER_TOKEN_LATENCY_BUCKETS = [
  0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
];
const REQUEST_LATENCY_BUCKETS = [
  0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
];

export interface SimMetricsConfig {
  modelName: string;
  engine: string;
  blockSize: number;
  numGpuBlocks: number;
  /** vLLM only registers vllm:lora_requests_info when LoRA is enabled. */
  maxLoras: number | null;
}

/** Registers the pod's vLLM metrics and returns the engine observer that feeds them. */
export function registerVllmMetrics(
  registry: Registry,
  config: SimMetricsConfig,
  scheduler: Scheduler,
  nowSeconds: () => number,
): EngineObserver {
  const labelNames = ['model_name', 'engine'] as const;
  const labels = { model_name: config.modelName, engine: config.engine };
  const registers = [registry];

  new Gauge({
    name: 'vllm:num_requests_running',
    help: 'Number of requests in model execution batches.',
    labelNames,
    registers,
    collect() {
      this.set(labels, scheduler.running.length);
    },
  });
  new Gauge({
    name: 'vllm:num_requests_waiting',
    help: 'Number of requests waiting to be processed.',
    labelNames,
    registers,
    collect() {
      this.set(labels, scheduler.waiting.length);
    },
  });
  new Gauge({
    name: 'vllm:kv_cache_usage_perc',
    help: 'KV-cache usage. 1 means 100 percent usage.',
    labelNames,
    registers,
    collect() {
      this.set(labels, scheduler.kv.usage());
    },
  });
  // Counters follow the cache manager's cumulative counts, so there is one place that decides them.
  let reportedQueries = 0;
  let reportedHits = 0;
  new Counter({
    name: 'vllm:prefix_cache_queries_total',
    help: 'Prefix cache queries, in terms of number of queried tokens.',
    labelNames,
    registers,
    collect() {
      const now = scheduler.kv.prefixCache.queries;
      if (now > reportedQueries) this.inc(labels, now - reportedQueries);
      else if (reportedQueries === 0) this.inc(labels, 0);
      reportedQueries = now;
    },
  });
  new Counter({
    name: 'vllm:prefix_cache_hits_total',
    help: 'Prefix cache hits, in terms of number of cached tokens.',
    labelNames,
    registers,
    collect() {
      const now = scheduler.kv.prefixCache.hits;
      if (now > reportedHits) this.inc(labels, now - reportedHits);
      else if (reportedHits === 0) this.inc(labels, 0);
      reportedHits = now;
    },
  });
  let reportedPreemptions = 0;
  new Counter({
    name: 'vllm:num_preemptions_total',
    help: 'Cumulative number of preemption from the engine.',
    labelNames,
    registers,
    collect() {
      const now = scheduler.numPreemptionsTotal;
      this.inc(labels, now - reportedPreemptions);
      reportedPreemptions = now;
    },
  });
  const promptTokens = new Counter({
    name: 'vllm:prompt_tokens_total',
    help: 'Number of prefill tokens processed.',
    labelNames,
    registers,
  });
  const generationTokens = new Counter({
    name: 'vllm:generation_tokens_total',
    help: 'Number of generation tokens processed.',
    labelNames,
    registers,
  });
  const success = new Counter({
    name: 'vllm:request_success_total',
    help: 'Count of successfully processed requests.',
    labelNames: [...labelNames, 'finished_reason'],
    registers,
  });
  const ttft = new Histogram({
    name: 'vllm:time_to_first_token_seconds',
    help: 'Histogram of time to first token in seconds.',
    labelNames,
    buckets: TIME_TO_FIRST_TOKEN_BUCKETS,
    registers,
  });
  const itl = new Histogram({
    name: 'vllm:inter_token_latency_seconds',
    help: 'Histogram of inter-token latency in seconds.',
    labelNames,
    buckets: INTER_TOKEN_LATENCY_BUCKETS,
    registers,
  });
  const e2e = new Histogram({
    name: 'vllm:e2e_request_latency_seconds',
    help: 'Histogram of e2e request latency in seconds.',
    labelNames,
    buckets: REQUEST_LATENCY_BUCKETS,
    registers,
  });
  const queueTime = new Histogram({
    name: 'vllm:request_queue_time_seconds',
    help: 'Histogram of time spent in WAITING phase for request.',
    labelNames,
    buckets: REQUEST_LATENCY_BUCKETS,
    registers,
  });
  for (const reason of ['stop', 'length', 'abort', 'error']) success.inc({ ...labels, finished_reason: reason }, 0);
  for (const c of [promptTokens, generationTokens]) c.inc(labels, 0);

  // vLLM's CacheConfig.metrics_info(): every config field as a string label, plus engine.
  new Gauge({
    name: 'vllm:cache_config_info',
    help: 'Information of the LLMEngine CacheConfig',
    labelNames: [
      'block_size',
      'cache_dtype',
      'enable_prefix_caching',
      'gpu_memory_utilization',
      'num_gpu_blocks',
      'num_cpu_blocks',
      'prefix_caching_hash_algo',
      'engine',
    ],
    registers,
  }).set(
    {
      block_size: String(config.blockSize),
      cache_dtype: 'auto',
      enable_prefix_caching: 'True',
      gpu_memory_utilization: '0.92',
      num_gpu_blocks: String(config.numGpuBlocks),
      num_cpu_blocks: 'None',
      prefix_caching_hash_algo: 'sha256_cbor',
      engine: config.engine,
    },
    1,
  );

  if (config.maxLoras !== null) {
    const maxLora = String(config.maxLoras);
    new Gauge({
      name: 'vllm:lora_requests_info',
      help: 'Running stats on lora requests.',
      labelNames: ['max_lora', 'waiting_lora_adapters', 'running_lora_adapters'],
      registers,
      collect() {
        const names = (rs: SimRequest[]) => [...new Set(rs.filter((r) => r.lora).map((r) => r.lora!.name))].join(',');
        this.set(
          { max_lora: maxLora, waiting_lora_adapters: names(scheduler.waiting), running_lora_adapters: names(scheduler.running) },
          nowSeconds(),
        );
      },
    });
  }

  return {
    onAdmitted(request) {
      if (request.firstScheduledMs !== null && request.numPreemptions === 0)
        queueTime.observe(labels, Math.max(0, request.firstScheduledMs - request.arrivalMs) / 1000);
    },
    onFirstToken(_request, ttftMs) {
      ttft.observe(labels, ttftMs / 1000);
    },
    onToken(_request, interTokenMs) {
      itl.observe(labels, interTokenMs / 1000);
    },
    onFinished(request, simMs) {
      promptTokens.inc(labels, request.numPromptTokens);
      generationTokens.inc(labels, request.numOutputTokens);
      success.inc({ ...labels, finished_reason: request.finishReason ?? 'length' });
      e2e.observe(labels, (simMs - request.arrivalMs) / 1000);
    },
  };
}
