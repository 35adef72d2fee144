import { afterEach, describe, expect, it } from '@jest/globals';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { HealthService, type HealthCheckResponse } from '../common/grpc/health.ts';
import { createLogger, silentLogger } from '../common/log.ts';
import type { PrefixScorer, ScoreRequest } from '../indexer/public.ts';
import { ExternalProcessorClient, headersToRecord, type ProcessingRequest, type ProcessingResponse } from '../envoy/ext-proc.ts';
import { startRouter, type RouterOptions, type RunningRouter } from './router.ts';

interface ProcessClient extends grpc.Client {
  Process(): grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse>;
}
interface HealthClient extends grpc.Client {
  Check(req: { service: string }, cb: (err: grpc.ServiceError | null, res?: HealthCheckResponse) => void): void;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A model server's /metrics as vLLM writes it, with a queue length the test sets. */
async function fakeEngine(waiting: number): Promise<{ address: string; setWaiting(n: number): void }> {
  let queue = waiting;
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(
      `# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name="m"} ${queue}\n` +
        `vllm:num_requests_running{model_name="m"} 1\nvllm:kv_cache_usage_perc{model_name="m"} 0.1\n`,
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, setWaiting: (n) => (queue = n) };
}

async function start(options: Partial<RouterOptions>): Promise<RunningRouter> {
  const router = await startRouter({
    host: '127.0.0.1',
    grpcPort: 0,
    grpcHealthPort: 0,
    metricsPort: 0,
    secureServing: false,
    log: silentLogger,
    ...options,
  });
  cleanups.push(() => router.close());
  return router;
}

/** Sends one completions request through the router; returns its pick and the body it forwards. */
async function route(router: RunningRouter, body: object): Promise<{ destination?: string; body: string; immediate?: unknown }> {
  const client = new ExternalProcessorClient(`127.0.0.1:${router.grpcPort}`, grpc.credentials.createInsecure()) as ProcessClient;
  try {
    return await new Promise((resolve, reject) => {
      const call = client.Process();
      let destination: string | undefined;
      const chunks: Buffer[] = [];
      call.on('data', (m: ProcessingResponse) => {
        if (m.immediate_response) resolve({ body: '', immediate: m.immediate_response.status.code });
        if (m.request_headers) {
          destination = headersToRecord({ headers: (m.request_headers.response?.header_mutation?.set_headers ?? []).map((o) => o.header) })[
            'x-gateway-destination-endpoint'
          ];
        }
        const streamed = m.request_body?.response?.body_mutation?.streamed_response;
        if (streamed) {
          chunks.push(Buffer.from(streamed.body ?? []));
          if (streamed.end_of_stream) {
            resolve({ destination, body: Buffer.concat(chunks).toString() });
            call.end();
          }
        }
      });
      call.on('error', reject);
      call.write({ request_headers: { headers: { headers: [{ key: ':path', raw_value: Buffer.from('/v1/completions') }] } } });
      call.write({ request_body: { body: Buffer.from(JSON.stringify(body)), end_of_stream: true } });
    });
  } finally {
    client.close();
  }
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const QUEUE_CONFIG = `
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
  - pluginRef: max-score-picker
`;

describe('startRouter', () => {
  it('refuses to start without endpoints, naming the flags', async () => {
    await expect(start({})).rejects.toThrow(/--endpoints .*--pool-name or --endpoint-selector/);
    await expect(start({ endpoints: ['127.0.0.1:1'], configFile: '/x', configText: 'y' })).rejects.toThrow(
      /--config-file and --config-text are alternatives/,
    );
  });

  it('routes by the config text through scraped metrics, and serves health and /metrics', async () => {
    const busy = await fakeEngine(20);
    const idle = await fakeEngine(0);
    const router = await start({ endpoints: [busy.address, idle.address], configText: QUEUE_CONFIG, refreshMetricsIntervalMs: 20 });
    // The first requests may run before the first scrape; the queue scorer decides once it has one.
    const picked = await until('the idle endpoint to be picked', async () => {
      const r = await route(router, { model: 'm', prompt: 'hello' });
      return r.destination === idle.address ? r : undefined;
    });
    expect(JSON.parse(picked.body)).toEqual({ model: 'm', prompt: 'hello' });

    const health = new HealthService(`127.0.0.1:${router.healthPort}`, grpc.credentials.createInsecure()) as HealthClient;
    cleanups.push(() => health.close());
    const status = await new Promise<string | undefined>((resolve) =>
      health.Check({ service: 'readiness' }, (_e, r) => resolve(r?.status)),
    );
    expect(status).toBe('SERVING');

    const base = `http://127.0.0.1:${router.metricsPort}`;
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toMatch(/kvroute_router_requests_total\{model="m",target_model="m"\} \d+/);
    expect(text).toContain(`kvroute_router_endpoint_picks_total{endpoint="${idle.address}"}`);
    expect(text).toContain('kvroute_router_ready_endpoints 2');
  });

  it('reloads the config file when it changes: new models map, and a bad file keeps the config in force', async () => {
    const engine = await fakeEngine(0);
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kvroute-router-'));
    cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'router.yaml');
    await fs.writeFile(file, QUEUE_CONFIG);
    const logs: string[] = [];
    const router = await start({
      endpoints: [engine.address],
      configFile: file,
      model: 'base',
      log: createLogger({ write: (line) => logs.push(line) }),
    });

    expect((await route(router, { model: 'chat', prompt: 'x' })).destination).toBe(engine.address);
    await fs.writeFile(file, `${QUEUE_CONFIG}models:\n- modelName: chat\n  targetModels: [{name: lora-a}]\n`);
    const rewritten = await until('the reloaded model table to rewrite the model', async () => {
      const r = await route(router, { model: 'chat', prompt: 'x' });
      return JSON.parse(r.body).model === 'lora-a' ? r : undefined;
    });
    expect(rewritten.destination).toBe(engine.address);
    // Other models are now unknown to the pool.
    expect((await route(router, { model: 'other', prompt: 'x' })).immediate).toBe('NotFound');

    await fs.writeFile(file, 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nschedulingProfiles: []\n');
    await until('the watcher to refuse the bad file', async () => (logs.some((l) => l.includes('schedulingProfiles')) ? true : undefined));
    expect(JSON.parse((await route(router, { model: 'chat', prompt: 'x' })).body).model).toBe('lora-a');
    const metrics = await (await fetch(`http://127.0.0.1:${router.metricsPort}/metrics`)).text();
    expect(metrics).toContain('kvroute_router_config_reloads_total{result="success"} 1');
  });

  it('asks the indexer given for the default config and picks the endpoint holding the prefix', async () => {
    const cold = await fakeEngine(0);
    const warm = await fakeEngine(0);
    const asked: ScoreRequest[] = [];
    const indexer: PrefixScorer = {
      score: async (request) => {
        asked.push(request);
        return { scores: { [warm.address]: 8 }, totalBlocks: 10 };
      },
    };
    const router = await start({
      endpoints: [cold.address, warm.address],
      indexerClient: () => indexer,
      indexer: '127.0.0.1:1',
      refreshMetricsIntervalMs: 20,
    });
    const r = await route(router, { model: 'm', prompt: 'a long shared prefix' });
    expect(r.destination).toBe(warm.address);
    expect(asked[0]).toMatchObject({ model: 'm', prompt: 'a long shared prefix' });
  });

  it('drains on close: readiness drops and the servers stop', async () => {
    const engine = await fakeEngine(0);
    const router = await start({ endpoints: [engine.address], configText: QUEUE_CONFIG, drainTimeoutMs: 1_000 });
    const base = `http://127.0.0.1:${router.metricsPort}`;
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    await router.drain();
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    await router.close();
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  });
});
