// Pieces shared by the benchmarks that drive traffic through Envoy and the router (bench/router.ts,
// bench/chaos/load.ts): deterministic prompt text, and in-bench upstreams that answer at once with a
// small OpenAI-shaped completion and serve vLLM metrics on /metrics, so what is measured is the
// gateway, the router and the indexer, not a model server.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mulberry32 } from '../../src/common/random.ts';

const VOCABULARY = (
  'the a cache prefix router gateway envoy block token pod model query stream request answer latency ' +
  'queue memory kernel engine batch schedule index event topic replica warm cold hot load bound spill ' +
  'river mountain city garden window paper music number letter question story history science market ' +
  'water light house table morning evening summer winter purple orange silver golden quiet rapid gentle'
).split(' ');

/** `count` words drawn from a small vocabulary by a seeded generator: the same seed, the same text. */
export function words(seed: number, count: number): string {
  const random = mulberry32(seed);
  const out: string[] = new Array(count);
  for (let i = 0; i < count; i++) out[i] = VOCABULARY[Math.floor(random() * VOCABULARY.length)]!;
  return out.join(' ');
}

export interface Upstream {
  port: number;
  close(): Promise<void>;
}

export interface UpstreamOptions {
  /** The model named in completions and metrics; default "bench". */
  model?: string;
  /** Called with each completion request's headers once its body has arrived (before the answer). */
  onRequest?: (headers: http.IncomingHttpHeaders) => void;
}

/** An upstream that answers at once; its vLLM metrics count the requests it holds as running. */
export function startUpstream(options: UpstreamOptions = {}): Promise<Upstream> {
  const model = options.model ?? 'bench';
  const completion = JSON.stringify({
    id: 'cmpl-bench',
    object: 'text_completion',
    created: 0,
    model,
    choices: [{ index: 0, text: 'ok', logprobs: null, finish_reason: 'length', stop_reason: null }],
    usage: { prompt_tokens: 0, completion_tokens: 1, total_tokens: 1, prompt_tokens_details: { cached_tokens: 0 } },
  });
  let running = 0;
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/metrics') {
      res.setHeader('content-type', 'text/plain; version=0.0.4');
      res.end(
        `vllm:num_requests_running{model_name="${model}"} ${running}\n` +
          `vllm:num_requests_waiting{model_name="${model}"} 0\n` +
          `vllm:kv_cache_usage_perc{model_name="${model}"} 0\n`,
      );
      return;
    }
    running++;
    req.on('data', () => {});
    req.on('end', () => {
      running--;
      options.onRequest?.(req.headers);
      res.setHeader('content-type', 'application/json');
      res.end(completion);
    });
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      }),
    ),
  );
}
