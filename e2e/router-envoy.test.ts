// The router behind a real Envoy, configured as the Gateway API Inference Extension's standalone
// gateway (ext_proc with both bodies FULL_DUPLEX_STREAMED and trailers SEND, an ORIGINAL_DST cluster
// reading x-gateway-destination-endpoint, ext_proc over TLS h2 to the router), with a real indexer and
// three simulated vLLM pods publishing KV events to it; every peer is a child process.
//
// Each simulated pod listens on its own loopback address (127.0.0.2-4, port 0) and names itself by that
// IP in its KV-event topic, `kv@127.0.0.2@<model>`: the IP-only form the kvroute operator renders
// (`kv@$(POD_IP)@...`), which the router's pod-identity rule maps to every endpoint on that IP (here
// exactly one). Which pod served a request is read from the sim's `x-inference-pod` response header.

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { silentLogger } from '../src/common/log.ts';
import { mulberry32 } from '../src/common/random.ts';
import { startEnvoy, type RunningEnvoy } from '../src/gateway/envoy-process.ts';
import { portOf, spawnKvroute, type KvrouteProcess } from '../test/support/kvroute.ts';
import { until } from '../test/support/until.ts';
import { envoyAvailable, envoyBinary, envoyGatewayConfig, envoyRequired } from './support/envoy.ts';
import { metricValue } from './support/prometheus-text.ts';

// Skipped (with the reason in the title) only when Envoy is absent and not required; hack/test.sh sets
// KVROUTE_REQUIRE_ENVOY, so CI fails rather than skips without it.
const enabled = envoyAvailable() || envoyRequired();
const SKIP_REASON = 'skipped: no Envoy; run bash hack/envoy/install.sh, or set KVROUTE_REQUIRE_ENVOY=1 to fail instead';
if (!enabled) console.warn(`e2e/router-envoy.test.ts ${SKIP_REASON}`);
const describeEnvoy = enabled ? describe : describe.skip;
const title = (what: string) => (enabled ? what : `${what} (${SKIP_REASON})`);

const MODEL = 'router-e2e';
const POD_IPS = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
/** vLLM's default block size, which the sims and the indexer use. */
const BLOCK = 16;

/**
 * The default scheduling profile (load-bound-filter, precise-prefix x3, queue x1, kv-cache x1,
 * max-score-picker) with one change: the indexer gets 1 s instead of 50 ms. On a busy two-core CI
 * machine tokenizing a prompt can take longer than 50 ms, and a precise scorer that abstains would
 * make the affinity tests flaky; what they test is the routing, not the indexer's latency.
 */
const ROUTER_CONFIG = `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: load-bound-filter
- type: precise-prefix-cache-scorer
  parameters: {timeoutMs: 1000}
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: load-bound-filter
  - {pluginRef: precise-prefix-cache-scorer, weight: 3}
  - {pluginRef: queue-scorer, weight: 1}
  - {pluginRef: kv-cache-utilization-scorer, weight: 1}
  - pluginRef: max-score-picker
`;

const VOCABULARY = (
  'the a cache prefix router gateway envoy block token pod model query stream request answer latency ' +
  'queue memory kernel engine batch schedule index event topic replica warm cold hot load bound spill ' +
  'river mountain city garden window paper music number letter question story history science market ' +
  'water light house table morning evening summer winter purple orange silver golden quiet rapid gentle'
).split(' ');

/** `count` words drawn from a seeded generator: distinct seeds give prompts sharing no block. */
function words(seed: number, count: number): string {
  const random = mulberry32(seed);
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(VOCABULARY[Math.floor(random() * VOCABULARY.length)]!);
  return out.join(' ');
}

interface Completion {
  status: number;
  pod: string | null;
  headers: Headers;
  text: string;
  json: { usage?: { prompt_tokens: number; prompt_tokens_details?: { cached_tokens: number } }; error?: { code?: string } } | undefined;
}

async function post(port: number, body: unknown, path = '/v1/completions'): Promise<Completion> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: Completion['json'];
  try {
    json = JSON.parse(text) as Completion['json'];
  } catch {
    json = undefined;
  }
  return { status: res.status, pod: res.headers.get('x-inference-pod'), headers: res.headers, text, json };
}

function cachedTokens(c: Completion): number {
  return c.json?.usage?.prompt_tokens_details?.cached_tokens ?? 0;
}

async function page(url: string): Promise<string> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return res.text();
}

interface SimPod {
  ip: string;
  port: number;
  address: string;
  proc: KvrouteProcess;
}

interface Router {
  proc: KvrouteProcess;
  grpcPort: number;
  healthPort: number;
  metricsUrl: string;
}

describeEnvoy(title('the router behind a real Envoy (GIE standalone gateway), with an indexer and three simulated pods'), () => {
  let dir: string;
  let configFile: string;
  const stops: Array<() => Promise<void>> = [];
  let indexer: Indexer;
  let pods: SimPod[];

  interface Indexer {
    proc: KvrouteProcess;
    httpUrl: string;
    grpcPort: number;
    /** The ZMQ endpoint it bound (port 0 resolved), which the pods publish to. */
    zmqEndpoint: string;
  }

  /** Starts a peer and registers its stop for afterAll, even when it fails to become ready. */
  async function start(args: string[], name: string, readyLine: string): Promise<KvrouteProcess> {
    const proc = await spawnKvroute(args, { name, readyLine });
    stops.push(async () => void (await proc.stop()));
    return proc;
  }

  /** An indexer in central mode: pods publish to its ZMQ bind. */
  async function startIndexer(name: string): Promise<Indexer> {
    const flags = '--listen-host 127.0.0.1 --zmq-bind tcp://127.0.0.1:0 --http-port 0 --grpc-port 0';
    const proc = await start(['indexer', ...flags.split(' ')], name, 'indexer ready');
    return {
      proc,
      httpUrl: `http://127.0.0.1:${portOf(proc.ready, 'httpPort')}`,
      grpcPort: portOf(proc.ready, 'grpcPort'),
      zmqEndpoint: (proc.ready.zmqBound as string[])[0]!,
    };
  }

  async function startRouter(name: string, indexerGrpcPort: number): Promise<Router> {
    const flags = `--grpc-port 0 --grpc-health-port 0 --metrics-port 0 --model ${MODEL} --config-file ${configFile} --drain-timeout 1s`;
    const endpoints = pods.map((p) => p.address).join(',');
    const proc = await start(
      ['router', ...flags.split(' '), '--endpoints', endpoints, '--indexer', `127.0.0.1:${indexerGrpcPort}`],
      name,
      'router started',
    );
    const router = {
      proc,
      grpcPort: portOf(proc.ready, 'grpcPort'),
      healthPort: portOf(proc.ready, 'healthPort'),
      metricsUrl: `http://127.0.0.1:${portOf(proc.ready, 'metricsPort')}/metrics`,
    };
    // Ready once every endpoint has been scraped (the metric-based scorers have something to read).
    await until(
      async () => {
        const text = await page(router.metricsUrl);
        return pods.every((p) => !Number.isNaN(metricValue(text, 'kvroute_router_endpoint_kv_cache_utilization', { endpoint: p.address })));
      },
      { message: `${name}'s first scrape of every endpoint`, timeoutMs: 20_000 },
    );
    return router;
  }

  /**
   * Envoy as GIE's standalone gateway in front of `router`. Fail-open adds what makes FailOpen pass
   * traffic (envoyGatewayConfig's fallback): a route to a round-robin pool of the pods for requests
   * without a pick, buffered request bodies (Envoy keeps the body it sent the router, so it can still
   * fail open when the router dies), and the router's health check and outlier ejection.
   */
  async function startGateway(router: Router, failOpen: boolean): Promise<RunningEnvoy> {
    const config = envoyGatewayConfig({
      listenPort: 0,
      adminPort: 0,
      eppPort: router.grpcPort,
      eppTls: true,
      failureModeAllow: failOpen,
      ...(failOpen ? { fallback: { endpoints: pods.map((p) => ({ host: p.ip, port: p.port })), eppHealthPort: router.healthPort } } : {}),
    });
    const envoy = await startEnvoy({ binary: envoyBinary(), config, log: silentLogger, concurrency: 1 });
    stops.push(() => envoy.close());
    return envoy;
  }

  async function indexedBlocks(prompt: string): Promise<Record<string, number>> {
    const res = await fetch(`${indexer.httpUrl}/v1/score`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, prompt }),
    });
    if (!res.ok) throw new Error(`indexer /v1/score: ${res.status} ${await res.text()}`);
    return ((await res.json()) as { scores: Record<string, number> }).scores;
  }

  /** Waits until the indexer has at least `blocks` blocks of `prompt` on `pod` (its KV events arrived). */
  function untilIndexed(prompt: string, pod: string, blocks: number): Promise<number> {
    return until(
      async () => {
        const held = (await indexedBlocks(prompt))[pod] ?? 0;
        return held >= blocks ? held : 0;
      },
      { message: `the indexer to hold ${blocks} blocks of the prompt on ${pod}`, timeoutMs: 20_000 },
    );
  }

  function simMetric(pod: SimPod, name: string): Promise<number> {
    return page(`http://${pod.address}/metrics`).then((text) => metricValue(text, name));
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-router-envoy-'));
    configFile = path.join(dir, 'router.yaml');
    fs.writeFileSync(configFile, ROUTER_CONFIG);
    indexer = await startIndexer('indexer');
    // Fast engines (no front-end overhead, free prefill, 10 ms per step) so a test's time goes to
    // routing; room for a 2 MB prompt (about 370k tokens).
    const engine =
      '--frontend-overhead-ms 0 --step-base-ms 10 --prefill-ms-per-token 0 --decode-ms-per-seq 0 --kv-blocks 40000 --max-model-len 600000';
    pods = await Promise.all(
      POD_IPS.map(async (ip) => {
        const args = [
          'sim',
          '--host',
          ip,
          '--port',
          '0',
          '--pod-id',
          ip,
          '--model',
          MODEL,
          '--kv-events-endpoint',
          indexer.zmqEndpoint,
          ...engine.split(' '),
        ];
        const proc = await start(args, `sim ${ip}`, 'simulated vllm pod ready');
        const port = portOf(proc.ready, 'port');
        return { ip, port, address: `${ip}:${port}`, proc };
      }),
    );
  }, 120_000);

  afterAll(async () => {
    await Promise.all(
      stops
        .splice(0)
        .reverse()
        .map((stop) => stop().catch(() => {})),
    );
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  describe('routing', () => {
    let router: Router;
    let gateway: number;

    beforeAll(async () => {
      router = await startRouter('router', indexer.grpcPort);
      gateway = (await startGateway(router, false)).listenPort;
    }, 120_000);

    it('sends requests sharing a prefix to the pod that served it first', async () => {
      const prefix = `Warm prefix test. ${words(1, 700)}`;
      const first = await post(gateway, { model: MODEL, prompt: `${prefix} Question zero: ${words(100, 12)}`, max_tokens: 2 });
      expect(first.status).toBe(200);
      const warm = first.pod!;
      expect(POD_IPS).toContain(warm);
      // The prefix alone is about 55 blocks; wait until the pod's KV events have reached the indexer.
      await untilIndexed(prefix, warm, 40);

      // Back to back: each request goes out as the previous one's response ends, while the router's
      // last scrape of the warm pod (up to 50 ms old) may still show that request running. The load
      // discounts the router's own finished requests, so the warm pod is not mistaken for a busy one.
      const served: Array<{ status: number; pod: string | null; fromCache: boolean }> = [];
      for (let i = 1; i <= 8; i++) {
        const r = await post(gateway, { model: MODEL, prompt: `${prefix} Question ${i}: ${words(100 + i, 12)}`, max_tokens: 2 });
        served.push({ status: r.status, pod: r.pod, fromCache: cachedTokens(r) >= 40 * BLOCK });
      }
      // All on the warm pod, and served from its cache (the prefix's ~55 blocks), not recomputed.
      expect(served).toEqual(Array(8).fill({ status: 200, pod: warm, fromCache: true }));
    });

    it('spreads requests with distinct cold prefixes over every pod', async () => {
      const counts = new Map<string, number>(POD_IPS.map((ip) => [ip, 0]));
      for (let i = 0; i < 30; i++) {
        const r = await post(gateway, { model: MODEL, prompt: `Cold prompt number ${i}. ${words(1000 + i, 60)}`, max_tokens: 2 });
        expect(r.status).toBe(200);
        counts.set(r.pod!, (counts.get(r.pod!) ?? 0) + 1);
      }
      // With no prefix anywhere and idle pods, every score ties and the picker breaks ties at random:
      // each pod's count is Binomial(30, 1/3), and P(some pod gets 0 or more than 20) < 2e-4. A router
      // that always picked one pod (or two) fails.
      for (const [pod, n] of counts) {
        expect({ pod, n, atLeastOne: n >= 1, atMost20: n <= 20 }).toEqual({ pod, n, atLeastOne: true, atMost20: true });
      }
    });

    it('moves a hot prefix to a second pod once its warm pod is loaded past the bound, and the second pod warms', async () => {
      const prefix = `Hot prefix test. ${words(2, 700)}`;
      const ask = (i: number, maxTokens: number) =>
        post(gateway, { model: MODEL, prompt: `${prefix} Request ${i}: ${words(200 + i, 12)}`, max_tokens: maxTokens });
      const first = await ask(0, 2);
      expect(first.status).toBe(200);
      const warm = first.pod!;
      await untilIndexed(prefix, warm, 40);

      /**
       * Six requests with the hot prefix, each decoding for about a second, sent at the same moment:
       * the router schedules all six while each waits for the indexer, and counts each pick in
       * flight in the tick it is made. Without the bound all six would go to the warm pod (its prefix
       * score outweighs the load scorers); with the default bound (an endpoint may take a request
       * while its load + 1 <= max(ceil(1.25 x (total load + 1) / 3), 2)) the warm pod holds at most
       * ceil(1.25 x 6 / 3) = 3.
       */
      const burst = (from: number): Promise<Completion[]> => Promise.all(Array.from({ length: 6 }, (_, k) => ask(from + k, 100)));

      const diversionsBefore = metricValue(await page(router.metricsUrl), 'kvroute_router_load_bound_diversions_total');
      const spread = await burst(1);
      expect(spread.map((r) => r.status)).toEqual(Array(6).fill(200));
      const onWarm = spread.filter((r) => r.pod === warm).length;
      const spilled = spread.filter((r) => r.pod !== warm).map((r) => r.pod!);
      expect({ onWarm, withinBound: onWarm >= 1 && onWarm <= 3 }).toEqual({ onWarm: expect.any(Number), withinBound: true });
      expect(metricValue(await page(router.metricsUrl), 'kvroute_router_load_bound_diversions_total')).toBeGreaterThan(diversionsBefore);

      // The pod that took the first spill computed the prefix and published it: it is warm now.
      const second = spilled[0]!;
      await untilIndexed(prefix, second, 40);
      const secondPod = pods.find((p) => p.ip === second)!;
      const hitsBefore = await simMetric(secondPod, 'vllm:prefix_cache_hits_total');

      // The next burst spills to the warm second pod first (its prefix score beats the cold third
      // pod's), where the prefix is now a cache hit.
      const again = await burst(7);
      expect(again.map((r) => r.status)).toEqual(Array(6).fill(200));
      const onSecond = again.filter((r) => r.pod === second);
      expect(onSecond.length).toBeGreaterThanOrEqual(1);
      for (const r of onSecond) expect(cachedTokens(r)).toBeGreaterThanOrEqual(40 * BLOCK);
      expect(await simMetric(secondPod, 'vllm:prefix_cache_hits_total')).toBeGreaterThan(hitsBefore);
    });

    it('streams an SSE response through chunk by chunk', async () => {
      const started = performance.now();
      const res = await fetch(`http://127.0.0.1:${gateway}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL, prompt: `Stream test. ${words(3, 40)}`, max_tokens: 40, stream: true }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain('text/event-stream');
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      let text = '';
      let firstEventAt: number | undefined;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
        if (firstEventAt === undefined && text.includes('data: ')) firstEventAt = performance.now();
      }
      const endedAt = performance.now();
      const events = text.split('\n\n').filter((e) => e.startsWith('data: '));
      expect(events.at(-1)).toBe('data: [DONE]');
      expect(events.length).toBeGreaterThanOrEqual(40);
      // The engine takes 10 ms per token, so 40 tokens take at least 400 ms: a client that got its
      // first event at least 200 ms before the last was not sent a buffered response.
      expect(endedAt - firstEventAt!).toBeGreaterThan(200);
      expect(firstEventAt! - started).toBeLessThan(endedAt - started);
    });

    it('routes a 2 MB request body', async () => {
      let prompt = 'Large body test. ';
      for (let seed = 10_000; prompt.length < 2 * 1024 * 1024; seed++) prompt += words(seed, 1000) + '. ';
      const body = JSON.stringify({ model: MODEL, prompt, max_tokens: 2 });
      expect(body.length).toBeGreaterThan(2 * 1024 * 1024);
      const sizeBefore = metricValue(await page(router.metricsUrl), 'kvroute_router_request_size_bytes_sum');

      const r = await post(gateway, body);
      expect(r.status).toBe(200);
      expect(POD_IPS).toContain(r.pod);
      // The pod parsed the whole prompt: at least one token per 8 bytes of English words.
      expect(r.json?.usage?.prompt_tokens).toBeGreaterThan(body.length / 8);
      // And the router read all of it (not a pass-through).
      expect(metricValue(await page(router.metricsUrl), 'kvroute_router_request_size_bytes_sum') - (sizeBefore || 0)).toBe(body.length);
    }, 60_000);

    it('answers an unparseable body with 400 and the dropped-reason header, without reaching a pod', async () => {
      const r = await post(gateway, '{"model": "router-e2e", "prompt": ');
      expect(r.status).toBe(400);
      expect(r.headers.get('x-llm-d-request-dropped-reason')).toBe('bad-request');
      expect(r.pod).toBeNull();
      expect(r.json?.error?.code).toBe('bad-request');

      const noModel = await post(gateway, { prompt: 'no model here' });
      expect(noModel.status).toBe(400);
      expect(noModel.pod).toBeNull();
      expect(noModel.headers.get('x-llm-d-request-dropped-reason')).toBe('bad-request');
    });
  });

  describe('when the router dies', () => {
    let router: Router;
    let failOpen: RunningEnvoy;
    let failClose: RunningEnvoy;

    beforeAll(async () => {
      router = await startRouter('router (to be killed)', indexer.grpcPort);
      [failOpen, failClose] = await Promise.all([startGateway(router, true), startGateway(router, false)]);
    }, 120_000);

    it('fail-open keeps passing traffic to the pods; fail-close answers 5xx', async () => {
      const ask = (envoy: RunningEnvoy, i: number) =>
        post(envoy.listenPort, { model: MODEL, prompt: `Router down test ${i}. ${words(300 + i, 30)}`, max_tokens: 2 });
      const routerHealth = async () => [...(await clusterHealth(failOpen.adminUrl, 'epp')).values()];
      const failOpenCount = async () =>
        metricValue(await page(`${failOpen.adminUrl}/stats?format=prometheus`), 'envoy_http_ext_proc_failure_mode_allowed') || 0;
      await until(async () => (await routerHealth()).every(Boolean), { message: 'the fail-open gateway to see the router healthy' });
      // Both route through the router while it runs.
      for (const [name, envoy] of [
        ['fail-open', failOpen],
        ['fail-close', failClose],
      ] as const) {
        const r = await ask(envoy, 0);
        expect({ name, status: r.status }).toEqual({ name, status: 200 });
      }
      expect(metricValue(await page(router.metricsUrl), 'kvroute_router_endpoint_picks_total')).toBe(2);
      const failOpenBefore = await failOpenCount();

      router.proc.child.kill('SIGKILL');
      await router.proc.exited;
      // The fail-open gateway notices within one health-check interval (500 ms): see envoyGatewayConfig's fallback.
      await until(async () => !(await routerHealth()).some(Boolean), { message: 'the fail-open gateway to see the router down' });

      const open = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => ask(failOpen, i)));
      expect(open.map((r) => ({ status: r.status, fromPod: POD_IPS.includes(r.pod!) }))).toEqual(
        Array(6).fill({ status: 200, fromPod: true }),
      );
      // Without the router the fallback cluster balances over the pool (round robin).
      expect(new Set(open.map((r) => r.pod)).size).toBeGreaterThan(1);
      expect((await failOpenCount()) - failOpenBefore).toBeGreaterThanOrEqual(6);

      const closed = await Promise.all([7, 8, 9].map((i) => ask(failClose, i)));
      expect(closed.map((r) => ({ serverError: r.status >= 500 && r.status < 600, pod: r.pod }))).toEqual(
        Array(3).fill({ serverError: true, pod: null }),
      );
    });
  });

  describe('when the indexer dies', () => {
    let ownIndexer: Indexer;
    let router: Router;
    let gateway: number;

    beforeAll(async () => {
      // An indexer of its own, so killing it leaves the other tests' indexer alone.
      ownIndexer = await startIndexer('indexer (to be killed)');
      router = await startRouter('router (indexer to be killed)', ownIndexer.grpcPort);
      gateway = (await startGateway(router, false)).listenPort;
    }, 120_000);

    it('still routes every request, and counts the indexer errors', async () => {
      const ask = (i: number) => post(gateway, { model: MODEL, prompt: `Indexer down test ${i}. ${words(400 + i, 30)}`, max_tokens: 2 });
      const errors = async () => metricValue(await page(router.metricsUrl), 'kvroute_router_indexer_errors_total') || 0;
      // The first scores may time out while the new indexer loads the model's tokenizer (longer on a
      // busy machine); once it is warm, a request adds no error. Warm-up requests use their own prompts.
      let warm = 0;
      await until(
        async () => {
          const before = await errors();
          expect((await ask(100 + warm++)).status).toBe(200);
          return (await errors()) === before;
        },
        { message: 'the indexer to answer a score within the deadline', timeoutMs: 60_000 },
      );
      const errorsBefore = await errors();

      ownIndexer.proc.child.kill('SIGKILL');
      await ownIndexer.proc.exited;

      const after = [];
      for (let i = 1; i <= 5; i++) after.push(await ask(i));
      expect(after.map((r) => r.status)).toEqual(Array(5).fill(200));
      for (const r of after) expect(POD_IPS).toContain(r.pod);
      // One failed indexer call per request: the precise scorer abstained and the others decided.
      expect((await errors()) - errorsBefore).toBeGreaterThanOrEqual(5);
    });
  });
});

/** The health of each host of an Envoy cluster, from its admin API: address -> healthy. */
async function clusterHealth(adminUrl: string, cluster: string): Promise<Map<string, boolean>> {
  const body = (await (await fetch(`${adminUrl}/clusters?format=json`)).json()) as {
    cluster_statuses?: Array<{
      name: string;
      host_statuses?: Array<{
        address: { socket_address: { address: string; port_value: number } };
        health_status: Record<string, unknown>;
      }>;
    }>;
  };
  const out = new Map<string, boolean>();
  for (const h of body.cluster_statuses?.find((c) => c.name === cluster)?.host_statuses ?? []) {
    const { address, port_value } = h.address.socket_address;
    const s = h.health_status;
    out.set(`${address}:${port_value}`, s.eds_health_status === 'HEALTHY' && !s.failed_active_health_check && !s.pending_active_hc);
  }
  return out;
}
