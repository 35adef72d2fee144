// The gateway's failure modes against a real Envoy 1.40 when its only router dies: the router is
// SIGKILLed during sustained traffic (JSON and SSE completions with a body) and restarted on the same
// ports. Under FailOpen (envoyGatewayConfig with a fallback pool: BUFFERED request bodies, STREAMED
// response bodies, the router health-checked and ejected on its first refused connection) no request
// may fail, whatever phase it was in when the router died; under FailClose the requests that fail get
// a 5xx, quickly, and traffic recovers once the router is back.

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { silentLogger } from '../src/common/log.ts';
import { startEnvoy, type RunningEnvoy } from '../src/gateway/envoy-process.ts';
import { portOf, spawnKvroute, type KvrouteProcess } from '../test/support/kvroute.ts';
import { until } from '../test/support/until.ts';
import { envoyAvailable, envoyBinary, envoyGatewayConfig, envoyRequired } from './support/envoy.ts';
import { metricValue } from './support/prometheus-text.ts';

const enabled = envoyAvailable() || envoyRequired();
const SKIP_REASON = 'skipped: no Envoy; run bash hack/envoy/install.sh, or set KVROUTE_REQUIRE_ENVOY=1 to fail instead';
if (!enabled) console.warn(`e2e/gateway-failopen.test.ts ${SKIP_REASON}`);
const describeEnvoy = enabled ? describe : describe.skip;
const title = (what: string) => (enabled ? what : `${what} (${SKIP_REASON})`);

const MODEL = 'failopen-e2e';
/** Load scorers only: no indexer needed, the test is about the gateway, not the picks. */
const ROUTER_CONFIG = `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - {pluginRef: queue-scorer, weight: 1}
  - pluginRef: max-score-picker
`;
/** Requests per second of the open-loop traffic, and how long the router stays dead. */
const RATE = 25;
const DEAD_MS = 2_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A port free right now (the restarted router must come back on the same ports Envoy knows). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Outcome {
  status: number;
  /** The whole body arrived (JSON parsed, or the SSE stream ended with [DONE]). */
  complete: boolean;
  ms: number;
  sentAt: number;
  stream: boolean;
  error?: string;
}

/** One completion with a ~3 KB body; SSE on odd i, so a router death also meets responses mid-stream. */
async function completion(port: number, i: number, t0: number): Promise<Outcome> {
  const stream = i % 2 === 1;
  const sentAt = Date.now() - t0;
  const started = performance.now();
  let status = 0;
  const prompt = `Request ${i}. ${'a gateway must not drop a request when its router dies. '.repeat(55)}`;
  try {
    const res = await fetch(`http://127.0.0.1:${port}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, prompt, max_tokens: 8, stream }),
    });
    status = res.status;
    const text = await res.text();
    let complete = false;
    if (status === 200) {
      if (stream) complete = text.trimEnd().endsWith('data: [DONE]');
      else complete = Array.isArray((JSON.parse(text) as { choices?: unknown }).choices);
    }
    return { status, complete, ms: performance.now() - started, sentAt, stream };
  } catch (err) {
    // status stays 200 when the response had started and its body was cut short.
    return { status, complete: false, ms: performance.now() - started, sentAt, stream, error: String(err) };
  }
}

describeEnvoy(title('the gateway when its only router is SIGKILLed under traffic (real Envoy)'), () => {
  let dir: string;
  let configFile: string;
  const stops: Array<() => Promise<void>> = [];
  let pods: Array<{ port: number }>;

  async function start(args: string[], name: string, readyLine: string): Promise<KvrouteProcess> {
    const proc = await spawnKvroute(args, { name, readyLine });
    stops.push(async () => void (await proc.stop()));
    return proc;
  }

  async function startRouter(name: string, grpcPort: number, healthPort: number): Promise<KvrouteProcess> {
    const endpoints = pods.map((p) => `127.0.0.1:${p.port}`).join(',');
    const flags = `--grpc-port ${grpcPort} --grpc-health-port ${healthPort} --metrics-port 0 --model ${MODEL} --config-file ${configFile} --drain-timeout 1s`;
    return start(['router', ...flags.split(' '), '--endpoints', endpoints], name, 'router started');
  }

  async function startGateway(grpcPort: number, healthPort: number, failOpen: boolean): Promise<RunningEnvoy> {
    const config = envoyGatewayConfig({
      listenPort: 0,
      adminPort: 0,
      eppPort: grpcPort,
      eppTls: true,
      failureModeAllow: failOpen,
      fallback: { endpoints: pods.map((p) => ({ host: '127.0.0.1', port: p.port })), eppHealthPort: healthPort },
    });
    const envoy = await startEnvoy({ binary: envoyBinary(), config, log: silentLogger, concurrency: 1 });
    stops.push(() => envoy.close());
    return envoy;
  }

  /** Whether Envoy sees the router's endpoint healthy (its health check passed). */
  async function routerHealthy(envoy: RunningEnvoy): Promise<boolean> {
    const text = await (await fetch(`${envoy.adminUrl}/clusters`)).text();
    const line = text.split('\n').find((l) => l.startsWith('epp::') && l.includes('::health_flags::'));
    return line !== undefined && line.endsWith('::healthy');
  }

  /**
   * Open-loop traffic at RATE through the gateway; at 1.5 s the router is SIGKILLed, DEAD_MS later
   * restarted on the same ports, and traffic runs 2 s past the moment Envoy sees it healthy again.
   */
  async function killUnderTraffic(failOpen: boolean): Promise<{ outcomes: Outcome[]; killedAt: number; backAt: number }> {
    const grpcPort = await freePort();
    const healthPort = await freePort();
    let router = await startRouter('router', grpcPort, healthPort);
    const envoy = await startGateway(grpcPort, healthPort, failOpen);
    await until(() => routerHealthy(envoy), { message: 'Envoy sees the router healthy', timeoutMs: 20_000 });

    const t0 = Date.now();
    const inFlight: Array<Promise<Outcome>> = [];
    let stop = false;
    const traffic = (async () => {
      for (let i = 0; !stop; i++) {
        inFlight.push(completion(envoy.listenPort, i, t0));
        await sleep(1000 / RATE);
      }
    })();

    await sleep(1_500);
    const killedAt = Date.now() - t0;
    router.child.kill('SIGKILL');
    await router.exited;
    await sleep(DEAD_MS);
    router = await startRouter('router (restarted)', grpcPort, healthPort);
    await until(() => routerHealthy(envoy), { message: 'Envoy sees the restarted router healthy', timeoutMs: 20_000 });
    const backAt = Date.now() - t0;
    await sleep(2_000);
    stop = true;
    await traffic;
    const outcomes = await Promise.all(inFlight);
    await router.stop();
    await envoy.close();
    return { outcomes, killedAt, backAt };
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-gateway-failopen-'));
    configFile = path.join(dir, 'router.yaml');
    fs.writeFileSync(configFile, ROUTER_CONFIG);
    // Fast engines: each completion takes tens of ms, so many are in every phase when the router dies.
    const engine = '--frontend-overhead-ms 0 --step-base-ms 10 --prefill-ms-per-token 0 --decode-ms-per-seq 0';
    pods = await Promise.all(
      [0, 1].map(async (i) => {
        const args = ['sim', '--host', '127.0.0.1', '--port', '0', '--pod-id', `pod-${i}`, '--model', MODEL, ...engine.split(' ')];
        const proc = await start(args, `sim ${i}`, 'simulated vllm pod ready');
        return { port: portOf(proc.ready, 'port') };
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

  it('FailOpen: no request fails, in any phase, while the router dies, stays dead and comes back', async () => {
    const { outcomes, killedAt, backAt } = await killUnderTraffic(true);
    const failed = outcomes.filter((o) => o.status !== 200 || !o.complete);
    // Enough traffic around the kill for the claim to mean something.
    const aroundKill = outcomes.filter((o) => o.sentAt >= killedAt - 500 && o.sentAt <= killedAt + 500);
    expect({ aroundKill: aroundKill.length >= 10, backAfterKill: backAt > killedAt }).toEqual({ aroundKill: true, backAfterKill: true });
    expect({ total: outcomes.length, failed }).toEqual({ total: outcomes.length, failed: [] });
  }, 120_000);

  it("FailOpen: the router still sees the whole body and picks, also for a body past Envoy's 1 MiB default buffer", async () => {
    const router = await startRouter('router (big body)', await freePort(), await freePort());
    const grpcPort = portOf(router.ready, 'grpcPort');
    const envoy = await startGateway(grpcPort, portOf(router.ready, 'healthPort'), true);
    await until(() => routerHealthy(envoy), { message: 'Envoy sees the router healthy', timeoutMs: 20_000 });
    const metricsUrl = `http://127.0.0.1:${portOf(router.ready, 'metricsPort')}/metrics`;
    const picks = async () => metricValue(await (await fetch(metricsUrl)).text(), 'kvroute_router_endpoint_picks_total') || 0;
    const before = await picks();
    // 1.5 MiB of JSON: an OpenAI `user` field the router parses past, with the prompt after it.
    const body = JSON.stringify({ model: MODEL, user: 'u'.repeat(1.5 * 1024 * 1024), prompt: 'the end of a long body', max_tokens: 2 });
    const res = await fetch(`http://127.0.0.1:${envoy.listenPort}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    const text = await res.text();
    expect({ status: res.status, text: res.status === 200 ? '' : text }).toEqual({ status: 200, text: '' });
    // Picked by the router (not failed open to the fallback pool), which needs the body parsed whole.
    expect((await picks()) - before).toBe(1);
    await router.stop();
    await envoy.close();
  }, 120_000);

  it('FailClose: requests that fail get a 5xx within a second, and traffic recovers once the router is back', async () => {
    const { outcomes, killedAt, backAt } = await killUnderTraffic(false);
    const failed = outcomes.filter((o) => o.status !== 200 || !o.complete);
    // With the only router dead, FailClose has to fail requests: the test would be vacuous otherwise.
    expect(failed.length).toBeGreaterThan(0);
    // Each failure an HTTP 5xx from Envoy (not a hang, not a dropped connection), answered quickly;
    // except a response already streaming when the router died, which Envoy can only cut short.
    const cutShort = (o: Outcome) => o.status === 200 && o.sentAt <= killedAt;
    const bad = failed.filter((o) => !cutShort(o) && (o.status < 500 || o.status > 599 || o.ms > 1_000));
    expect(bad).toEqual([]);
    // Nothing sent before the kill or well after the router came back failed.
    const outside = failed.filter((o) => o.sentAt < killedAt - 1_000 || o.sentAt > backAt + 500);
    expect(outside).toEqual([]);
  }, 120_000);
});
