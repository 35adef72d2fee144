// The data plane the chaos suite breaks, as real child processes: one `kvroute sim` process per pod
// (so one pod can be SIGKILLed and restarted alone, on the same HTTP, event and replay ports, with an
// empty cache), the indexer subscribed to every pod, two router replicas (default profile) behind one
// real Envoy (both routers in its ext_proc cluster, each health-checked on its plaintext health port,
// FailOpen with a fallback pool, or FailClose), and the handles to kill, hang and restart each part.

import { appendFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import YAML from 'yaml';
import { createLogger, type Logger } from '../../src/common/log.ts';
import { startKvroute, type KvrouteChild } from '../../src/demo/process.ts';
import { envoyGatewayConfig } from '../../src/gateway/envoy-config.ts';
import { findEnvoy, startEnvoy, type RunningEnvoy } from '../../src/gateway/envoy-process.ts';
import { portOf } from '../../test/support/kvroute.ts';
import { until } from '../../test/support/until.ts';

export interface ChaosPoolOptions {
  pods: number;
  model: string;
  blockSize: number;
  kvBlocks: number;
  /** Simulated ms per wall ms of the pods. */
  timeScale: number;
  log: Logger;
  logDir?: string;
  startTimeoutMs?: number;
}

export interface ChaosPod {
  name: string;
  /** 127.0.0.1:<port>: the router's endpoint and the indexer's pod id. */
  address: string;
  url: string;
  port: number;
  events: string;
  replay: string;
  child: KvrouteChild | null;
}

export interface ChaosRouter {
  name: string;
  grpcPort: number;
  healthPort: number;
  metricsPort: number;
  metricsUrl: string;
  child: KvrouteChild | null;
}

export type FailureMode = 'FailOpen' | 'FailClose';

export interface ChaosGateway {
  url: string;
  failureMode: FailureMode;
  envoy: RunningEnvoy;
}

const DEFAULT_START_TIMEOUT_MS = 120_000;

/** `tcp://*:P` as logged by a pod, as a peer on this machine connects to it. */
function localEndpoint(bound: unknown, what: string): string {
  if (typeof bound !== 'string') throw new Error(`${what}: the simulator logged no bound endpoint`);
  const m = /^tcp:\/\/[^/]*:(\d+)$/.exec(bound);
  if (!m) throw new Error(`${what}: unexpected bound endpoint "${bound}"`);
  return `tcp://127.0.0.1:${m[1]}`;
}

const endpointPort = (endpoint: string): number => Number(endpoint.slice(endpoint.lastIndexOf(':') + 1));

export class ChaosPool {
  readonly pods: ChaosPod[] = [];
  readonly routers: ChaosRouter[] = [];
  readonly logDir: string;
  indexerUrl = '';
  indexerGrpcPort = 0;
  indexerHttpPort = 0;
  indexer: KvrouteChild | null = null;
  readonly #o: ChaosPoolOptions;
  readonly #gateways = new Set<ChaosGateway>();
  readonly #startTimeoutMs: number;
  readonly #envoyBinary: string;
  #gatewayCount = 0;

  private constructor(o: ChaosPoolOptions, envoyBinary: string) {
    this.#o = o;
    this.logDir = o.logDir ?? mkdtempSync(join(tmpdir(), 'kvroute-chaos-'));
    mkdirSync(this.logDir, { recursive: true });
    this.#startTimeoutMs = o.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    this.#envoyBinary = envoyBinary;
  }

  /** Starts pods, indexer and two routers (no gateway: see startGateway); stops what started on failure. */
  static async start(o: ChaosPoolOptions): Promise<ChaosPool> {
    const envoy = findEnvoy();
    if (envoy === null) throw new Error('Envoy not found: run `bash hack/envoy/install.sh` (caches it under .cache/envoy)');
    const pool = new ChaosPool(o, envoy);
    try {
      await Promise.all(Array.from({ length: o.pods }, (_, i) => pool.#startPod(i)));
      await pool.startIndexer();
      await Promise.all([0, 1].map((i) => pool.startRouter(i)));
      return pool;
    } catch (err) {
      await pool.stop();
      throw err;
    }
  }

  get model(): string {
    return this.#o.model;
  }

  get blockSize(): number {
    return this.#o.blockSize;
  }

  #simArgs(i: number, pod: ChaosPod | undefined): string[] {
    return [
      'sim',
      `--port=${pod?.port ?? 0}`,
      '--host=127.0.0.1',
      `--pod-id=sim-${i}`,
      `--model=${this.#o.model}`,
      '--tokenizer-workers=0',
      `--block-size=${this.#o.blockSize}`,
      `--kv-blocks=${this.#o.kvBlocks}`,
      `--time-scale=${this.#o.timeScale}`,
      `--seed=${i}`,
      `--kv-events-endpoint=tcp://*:${pod ? endpointPort(pod.events) : 0}`,
      `--kv-events-replay-endpoint=tcp://*:${pod ? endpointPort(pod.replay) : 0}`,
      '--debug-endpoints',
    ];
  }

  async #startPod(i: number): Promise<ChaosPod> {
    const existing = this.pods[i];
    const child = startKvroute(this.#simArgs(i, existing), { name: `kvroute sim-${i}`, logFile: join(this.logDir, `sim-${i}.log`) });
    const ready = await child.waitForLog('simulated vllm pod ready', this.#startTimeoutMs);
    if (existing) {
      existing.child = child;
      return existing;
    }
    const port = portOf(ready, 'port');
    const pod: ChaosPod = {
      name: `sim-${i}`,
      address: `127.0.0.1:${port}`,
      url: `http://127.0.0.1:${port}`,
      port,
      events: localEndpoint(ready.kvEvents, `pod sim-${i}`),
      replay: localEndpoint(ready.kvEventsReplay, `pod sim-${i}`),
      child,
    };
    this.pods[i] = pod;
    return pod;
  }

  /** SIGKILLs pod `i`; resolves once it is gone. */
  async killPod(i: number): Promise<void> {
    const pod = this.pods[i]!;
    const child = pod.child;
    pod.child = null;
    if (!child) return;
    child.child.kill('SIGKILL');
    await child.exited;
  }

  /** Starts pod `i` again on its ports, with an empty cache and its event sequence from 0. */
  async restartPod(i: number): Promise<void> {
    if (this.pods[i]!.child) throw new Error(`pod sim-${i} is running`);
    await this.#startPod(i);
  }

  /** POSTs /debug/faults of pod `i`. */
  async setPodFaults(i: number, faults: Record<string, unknown>): Promise<void> {
    const res = await fetch(`${this.pods[i]!.url}/debug/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(faults),
      signal: AbortSignal.timeout(5_000),
    });
    if (!res.ok) throw new Error(`pod sim-${i} /debug/faults: HTTP ${res.status} ${await res.text()}`);
  }

  /** Starts the indexer (on its first ports again after a kill). */
  async startIndexer(): Promise<void> {
    if (this.indexer) throw new Error('the indexer is running');
    const child = startKvroute(
      [
        'indexer',
        '--listen-host=127.0.0.1',
        `--http-port=${this.indexerHttpPort}`,
        `--grpc-port=${this.indexerGrpcPort}`,
        `--block-size=${this.#o.blockSize}`,
        `--tokenizer=${this.#o.model}=npm:qwen3`,
        '--tokenizer-workers=0',
        ...this.pods.flatMap((p) => ['--pod', `${p.address}=${p.events},${p.replay}`]),
      ],
      { name: 'kvroute indexer', logFile: join(this.logDir, 'indexer.log') },
    );
    const ready = await child.waitForLog('indexer ready', this.#startTimeoutMs);
    this.indexerHttpPort = portOf(ready, 'httpPort');
    this.indexerGrpcPort = portOf(ready, 'grpcPort');
    this.indexerUrl = `http://127.0.0.1:${this.indexerHttpPort}`;
    this.indexer = child;
  }

  async killIndexer(): Promise<void> {
    const child = this.indexer;
    this.indexer = null;
    if (!child) return;
    child.child.kill('SIGKILL');
    await child.exited;
  }

  /** Starts router `i` (default profile, TLS ext_proc), on its first ports again after a kill. */
  async startRouter(i: number): Promise<void> {
    const existing = this.routers[i];
    if (existing?.child) throw new Error(`router ${i} is running`);
    const child = startKvroute(
      [
        'router',
        `--grpc-port=${existing?.grpcPort ?? 0}`,
        `--grpc-health-port=${existing?.healthPort ?? 0}`,
        `--metrics-port=${existing?.metricsPort ?? 0}`,
        `--endpoints=${this.pods.map((p) => p.address).join(',')}`,
        `--indexer=127.0.0.1:${this.indexerGrpcPort}`,
        `--model=${this.#o.model}`,
        '--drain-timeout=2s',
      ],
      { name: `kvroute router-${i}`, logFile: join(this.logDir, `router-${i}.log`) },
    );
    const ready = await child.waitForLog('router started', this.#startTimeoutMs);
    const metricsPort = portOf(ready, 'metricsPort');
    await until(async () => (await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).ok, {
      message: `router-${i} to become ready`,
      timeoutMs: this.#startTimeoutMs,
      intervalMs: 25,
    });
    this.routers[i] = {
      name: `router-${i}`,
      grpcPort: portOf(ready, 'grpcPort'),
      healthPort: portOf(ready, 'healthPort'),
      metricsPort,
      metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
      child,
    };
  }

  async killRouter(i: number): Promise<void> {
    const r = this.routers[i]!;
    const child = r.child;
    r.child = null;
    if (!child) return;
    child.child.kill('SIGKILL');
    await child.exited;
  }

  /**
   * A real Envoy in front of `routers` (ext_proc cluster with one endpoint per router, each
   * health-checked on its plaintext health port, as a Service over router replicas), with the pods as
   * the fallback pool for FailOpen.
   */
  async startGateway(failureMode: FailureMode, routers: readonly number[] = [0, 1]): Promise<ChaosGateway> {
    const [first, ...rest] = routers.map((i) => this.routers[i]!);
    if (!first) throw new Error('startGateway: no router');
    const config = YAML.parse(
      envoyGatewayConfig({
        listenPort: 0,
        adminPort: 0,
        eppPort: first.grpcPort,
        eppTls: true,
        failureModeAllow: failureMode === 'FailOpen',
        fallback: {
          endpoints: this.pods.map((p) => ({ host: '127.0.0.1', port: p.port })),
          eppHealthPort: first.healthPort,
          healthCheckIntervalMs: 500,
        },
      }),
    ) as { static_resources: { clusters: Array<{ name: string; load_assignment: { endpoints: Array<{ lb_endpoints: unknown[] }> } }> } };
    // The ext_proc cluster gets every router, each checked on its own health port.
    const epp = config.static_resources.clusters.find((c) => c.name === 'epp')!;
    for (const r of rest) {
      epp.load_assignment.endpoints[0]!.lb_endpoints.push({
        endpoint: {
          address: { socket_address: { address: '127.0.0.1', port_value: r.grpcPort } },
          health_check_config: { port_value: r.healthPort },
        },
      });
    }
    // Envoy's own warnings (every failed ext_proc stream while a router is down) go to a file, not the progress.
    const envoyLog = join(this.logDir, `envoy-${++this.#gatewayCount}-${failureMode}.log`);
    const log = createLogger({ level: 'info', component: 'envoy', write: (line) => appendFileSync(envoyLog, `${line}\n`) });
    const envoy = await startEnvoy({ binary: this.#envoyBinary, config: YAML.stringify(config), log, concurrency: 1 });
    const gateway: ChaosGateway = { url: `http://127.0.0.1:${envoy.listenPort}`, failureMode, envoy };
    this.#gateways.add(gateway);
    // Envoy's first health checks must pass before it opens ext_proc streams (no panic mode).
    await delay(1_200);
    return gateway;
  }

  /** Router i's health in Envoy's ext_proc cluster (active health check), from the admin API; null if unknown. */
  async routerHealthyInEnvoy(g: ChaosGateway, i: number): Promise<boolean | null> {
    const port = this.routers[i]!.grpcPort;
    const body = (await (await fetch(`${g.envoy.adminUrl}/clusters?format=json`, { signal: AbortSignal.timeout(1_000) })).json()) as {
      cluster_statuses?: Array<{
        name: string;
        host_statuses?: Array<{ address: { socket_address: { port_value: number } }; health_status: Record<string, unknown> }>;
      }>;
    };
    const host = body.cluster_statuses
      ?.find((c) => c.name === 'epp')
      ?.host_statuses?.find((h) => h.address.socket_address.port_value === port);
    if (!host) return null;
    const h = host.health_status;
    // Out of rotation by the active health check or by outlier detection (a refused connection ejects
    // the router at once, envoy-config.ts), whichever sees the death first.
    return h.eds_health_status === 'HEALTHY' && !h.failed_active_health_check && !h.failed_outlier_check;
  }

  async stopGateway(g: ChaosGateway): Promise<void> {
    this.#gateways.delete(g);
    await g.envoy.close(5_000);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#gateways].map((g) => this.stopGateway(g)));
    const children = [...this.routers.map((r) => r.child), this.indexer, ...this.pods.map((p) => p.child)].filter(
      (c): c is KvrouteChild => c !== null && c !== undefined,
    );
    await Promise.all(children.map((c) => c.stop(5_000)));
  }
}
