// A long-running open-loop load generator for the load benchmark (bench/chaos/load.ts), run as a child
// process so its own event loop does not share a core's time slices with what it measures. Requests go
// out at a constant rate over keep-alive connections whatever the answers do (open loop); each prompt
// is one of a few shared prefixes (system prompts, documents; Zipf popularity) followed by a tail no
// other request has, as many users of a few applications send. It reports per window on stdout, one
// JSON line each, and a final summary line: the windows are what shows drift over a 10-minute run.

import { spawn } from 'node:child_process';
import http from 'node:http';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { mulberry32 } from '../../src/common/random.ts';
import { words } from './gateway-load.ts';
import { percentile } from './results.ts';

/** A prompt population: `prefixes` shared heads of `prefixWords` words, each request adds its own tail. */
export interface PromptMix {
  prefixes: number;
  prefixWords: number;
  tailWords: number;
  /** Zipf exponent of prefix popularity (prefix i is picked with weight 1 / (i + 1)^zipf). */
  zipf: number;
  seed: number;
}

export interface LoadClientConfig {
  port: number;
  model: string;
  rate: number;
  durationMs: number;
  windowMs: number;
  mix: PromptMix;
  /** Open requests allowed at once; a send past it counts as an error (the system is not keeping up). */
  maxInFlight: number;
  timeoutMs: number;
}

export interface LoadWindow {
  /** Window end, seconds since the first send. */
  atS: number;
  sent: number;
  completed: number;
  errors: Record<string, number>;
  /** Latency of the requests that completed in this window, scheduled send to last byte (null: none completed). */
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  /** How late sends went out against their schedule (a late generator would understate latency). */
  sendLagP99Ms: number | null;
}

export interface LoadSummary {
  sent: number;
  completed: number;
  errors: Record<string, number>;
  p50Ms: number | null;
  p99Ms: number | null;
  p999Ms: number | null;
  maxMs: number | null;
  sendLagP99Ms: number | null;
  wallMs: number;
}

/** The header that tells the upstream which shared prefix a request carries (its simulated KV cache). */
export const PREFIX_HEADER = 'x-bench-prefix';

/** The text of shared prefix `i` of a mix; the same on every run. */
export const prefixText = (mix: PromptMix, i: number): string => `System ${i}: ${words(mix.seed * 1000 + i, mix.prefixWords)}`;

function zipfPicker(mix: PromptMix, random: () => number): () => number {
  const cumulative: number[] = [];
  let total = 0;
  for (let i = 0; i < mix.prefixes; i++) cumulative.push((total += 1 / (i + 1) ** mix.zipf));
  return () => {
    const r = random() * total;
    let i = 0;
    while (cumulative[i]! < r) i++;
    return i;
  };
}

/** Milliseconds to the microsecond; null for a percentile of no samples (JSON has no NaN). */
const round = (x: number): number | null => (Number.isFinite(x) ? +x.toFixed(3) : null);

async function generate(config: LoadClientConfig, emit: (line: object) => void): Promise<void> {
  const heads = Array.from({ length: config.mix.prefixes }, (_, i) =>
    Buffer.from(`{"model":"${config.model}","max_tokens":1,"prompt":"${prefixText(config.mix, i)} User `),
  );
  const pick = zipfPicker(config.mix, mulberry32(config.mix.seed));
  const agent = new http.Agent({ keepAlive: true, maxSockets: config.maxInFlight });
  const total = Math.round((config.rate * config.durationMs) / 1000);
  const intervalMs = 1000 / config.rate;

  const all = new Float64Array(total);
  let allCount = 0;
  const summary = { sent: 0, completed: 0, errors: {} as Record<string, number> };
  const sendLags: number[] = [];
  let window = { sent: 0, completed: 0, errors: {} as Record<string, number>, latencies: [] as number[], lags: [] as number[] };
  const fail = (why: string) => {
    summary.errors[why] = (summary.errors[why] ?? 0) + 1;
    window.errors[why] = (window.errors[why] ?? 0) + 1;
  };

  let inFlight = 0;
  let settled = 0;
  let allSettled!: () => void;
  const done = new Promise<void>((resolve) => (allSettled = resolve));
  const settle = () => {
    inFlight--;
    if (++settled === total) allSettled();
  };

  const send = (n: number, scheduledAt: number) => {
    if (inFlight >= config.maxInFlight) {
      inFlight++;
      fail('generator-cap');
      settle();
      return;
    }
    inFlight++;
    summary.sent++;
    window.sent++;
    const prefix = pick();
    const head = heads[prefix]!;
    const tail = Buffer.from(`${n}: ${words(config.mix.seed * 7919 + n, config.mix.tailWords)}"}`);
    const req = http.request({
      host: '127.0.0.1',
      port: config.port,
      method: 'POST',
      path: '/v1/completions',
      agent,
      headers: { 'content-type': 'application/json', 'content-length': head.length + tail.length, [PREFIX_HEADER]: String(prefix) },
      timeout: config.timeoutMs,
    });
    let finished = false;
    const finish = (error?: string) => {
      if (finished) return;
      finished = true;
      if (error) fail(error);
      settle();
    };
    req.on('response', (res) => {
      res.on('data', () => {});
      res.on('end', () => {
        if (res.statusCode === 200) {
          const ms = performance.now() - scheduledAt;
          summary.completed++;
          window.completed++;
          window.latencies.push(ms);
          all[allCount++] = ms;
          finish();
        } else finish(`http-${res.statusCode}`);
      });
      res.on('error', () => finish('response-error'));
    });
    req.on('timeout', () => {
      req.destroy();
      finish('timeout');
    });
    req.on('error', () => finish('connection-error'));
    req.write(head);
    req.end(tail);
  };

  const started = performance.now();
  const flushWindow = () => {
    const w = window;
    window = { sent: 0, completed: 0, errors: {}, latencies: [], lags: [] };
    w.latencies.sort((a, b) => a - b);
    w.lags.sort((a, b) => a - b);
    emit({
      window: {
        atS: +((performance.now() - started) / 1000).toFixed(3),
        sent: w.sent,
        completed: w.completed,
        errors: w.errors,
        p50Ms: round(percentile(w.latencies, 50)),
        p99Ms: round(percentile(w.latencies, 99)),
        maxMs: round(w.latencies.at(-1) ?? NaN),
        sendLagP99Ms: round(percentile(w.lags, 99)),
      } satisfies LoadWindow,
    });
  };
  const windowTimer = setInterval(flushWindow, config.windowMs);

  let next = 0;
  const tick = () => {
    const now = performance.now();
    // Every request whose time has come goes now (catching up after a late timer).
    while (next < total && started + next * intervalMs <= now) {
      const scheduledAt = started + next * intervalMs;
      const lag = now - scheduledAt;
      sendLags.push(lag);
      window.lags.push(lag);
      send(next, scheduledAt);
      next++;
    }
    if (next < total) setTimeout(tick, Math.max(0, started + next * intervalMs - performance.now()));
  };
  tick();
  if (total > 0) await done;
  clearInterval(windowTimer);
  flushWindow();
  agent.destroy();
  const latencies = all.subarray(0, allCount).sort();
  sendLags.sort((a, b) => a - b);
  emit({
    summary: {
      ...summary,
      p50Ms: round(percentile(latencies, 50)),
      p99Ms: round(percentile(latencies, 99)),
      p999Ms: round(percentile(latencies, 99.9)),
      maxMs: round(latencies.at(-1) ?? NaN),
      sendLagP99Ms: round(percentile(sendLags, 99)),
      wallMs: +(performance.now() - started).toFixed(3),
    } satisfies LoadSummary,
  });
}

export interface RunningLoadClient {
  pid: number;
  /** Resolves with the summary once every request has settled and the child has exited. */
  finished: Promise<LoadSummary>;
}

/** Starts the generator in a child process (`nice` as this process); `onWindow` gets each window as it closes. */
export function startLoadClient(node: string, config: LoadClientConfig, onWindow: (w: LoadWindow) => void): RunningLoadClient {
  const child = spawn(node, [fileURLToPath(import.meta.url), '--load-client', JSON.stringify(config)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let summary: LoadSummary | undefined;
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    const message = JSON.parse(line) as { window?: LoadWindow; summary?: LoadSummary };
    if (message.window) onWindow(message.window);
    if (message.summary) summary = message.summary;
  });
  const finished = new Promise<LoadSummary>((resolve, reject) =>
    child.on('exit', (code) =>
      code === 0 && summary ? resolve(summary) : reject(new Error(`load generator exited with ${code} before its summary`)),
    ),
  );
  return { pid: child.pid ?? 0, finished };
}

if (import.meta.main) {
  const at = process.argv.indexOf('--load-client');
  await generate(JSON.parse(process.argv[at + 1]!) as LoadClientConfig, (line) => process.stdout.write(`${JSON.stringify(line)}\n`));
}
