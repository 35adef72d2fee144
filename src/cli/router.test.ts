import { afterEach, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../common/log.ts';
import { command, routerOptions, type RouterFlags } from './router.ts';

/** The flags commander parses from `args`, without starting the router. */
function flagsOf(args: string[]): RouterFlags {
  const cmd = command().exitOverride();
  cmd.action(() => {});
  cmd.configureOutput({ writeErr: () => {} });
  cmd.parse(args, { from: 'user' });
  return cmd.opts() as RouterFlags;
}

describe('kvroute router flags', () => {
  it("defaults to GIE's ports, TLS, 50 ms scrapes, 2 s staleness and a 30 s drain", () => {
    expect(flagsOf([])).toMatchObject({
      grpcPort: 9002,
      grpcHealthPort: 9003,
      metricsPort: 9090,
      secureServing: true,
      poolGroup: 'inference.networking.k8s.io',
      servingLabel: { key: 'llm-d.ai/inferenceServing', value: 'true' },
      refreshMetricsInterval: 50,
      metricsStalenessThreshold: 2_000,
      drainTimeout: 30_000,
      logLevel: 'info',
    });
  });

  it('reads the flags the operator renders', () => {
    const flags = flagsOf([
      '--grpc-port=9002',
      '--grpc-health-port=9003',
      '--metrics-port=9090',
      '--config-file=/etc/kvroute/router.yaml',
      '--pool-name=pool',
      '--pool-namespace=ml',
      '--pool-group=inference.kvroute.io',
      '--model=Qwen/Qwen3-0.6B',
    ]);
    expect(flags).toMatchObject({
      configFile: '/etc/kvroute/router.yaml',
      poolName: 'pool',
      poolNamespace: 'ml',
      poolGroup: 'inference.kvroute.io',
      model: 'Qwen/Qwen3-0.6B',
    });
  });

  it('takes --secure-serving=false, durations, selectors, ports and endpoint lists', () => {
    const flags = flagsOf([
      '--secure-serving=false',
      '--refresh-metrics-interval',
      '100ms',
      '--metrics-staleness-threshold=1m',
      '--drain-timeout=5s',
      '--endpoint-selector',
      'app=vllm,tier=gpu',
      '--endpoint-target-ports',
      '8000,8001',
      '--endpoints',
      '10.0.0.1:8000, 10.0.0.2:8000',
      '--serving-label',
      'serving=yes',
    ]);
    expect(flags).toMatchObject({
      secureServing: false,
      refreshMetricsInterval: 100,
      metricsStalenessThreshold: 60_000,
      drainTimeout: 5_000,
      endpointSelector: { app: 'vllm', tier: 'gpu' },
      endpointTargetPorts: [8000, 8001],
      endpoints: ['10.0.0.1:8000', '10.0.0.2:8000'],
      servingLabel: { key: 'serving', value: 'yes' },
    });
    expect(flagsOf(['--secure-serving']).secureServing).toBe(true);
  });

  it('rejects bad values, naming the flag', () => {
    expect(() => flagsOf(['--secure-serving=maybe'])).toThrow(/--secure-serving expects true or false/);
    expect(() => flagsOf(['--drain-timeout=30'])).toThrow(/--drain-timeout: expected a duration/);
    expect(() => flagsOf(['--grpc-port=70000'])).toThrow(/--grpc-port expects a port/);
    expect(() => flagsOf(['--endpoint-target-ports=0'])).toThrow(/--endpoint-target-ports expects ports/);
    expect(() => flagsOf(['--endpoint-selector=app'])).toThrow(/--endpoint-selector expects KEY=VALUE/);
  });

  it('passes the input bounds with their defaults, and refuses a bound below 1', () => {
    expect(routerOptions(flagsOf(['--endpoints=10.0.0.1:8000']), silentLogger, {}).limits).toEqual({
      maxRequestBodyBytes: 64 * 1024 * 1024,
      maxRequestHeaders: 256,
      maxRequestHeaderBytes: 256 * 1024,
      maxConcurrentStreams: 10_000,
    });
    const flags = [
      '--max-request-body-bytes=1024',
      '--max-request-headers=8',
      '--max-request-header-bytes=512',
      '--max-concurrent-streams=2',
    ];
    expect(routerOptions(flagsOf(['--endpoints=10.0.0.1:8000', ...flags]), silentLogger, {}).limits).toEqual({
      maxRequestBodyBytes: 1024,
      maxRequestHeaders: 8,
      maxRequestHeaderBytes: 512,
      maxConcurrentStreams: 2,
    });
    expect(() => flagsOf(['--max-concurrent-streams=0'])).toThrow(/--max-concurrent-streams expects an integer >= 1/);
  });

  it('takes the pool namespace from $POD_NAMESPACE, else "default"', () => {
    expect(routerOptions(flagsOf(['--endpoints=10.0.0.1:8000']), silentLogger, { POD_NAMESPACE: 'ml' }).poolNamespace).toBe('ml');
    expect(routerOptions(flagsOf(['--endpoints=10.0.0.1:8000']), silentLogger, {}).poolNamespace).toBe('default');
    expect(
      routerOptions(flagsOf(['--endpoints=10.0.0.1:8000', '--pool-namespace=x']), silentLogger, { POD_NAMESPACE: 'ml' }).poolNamespace,
    ).toBe('x');
  });
});

describe('kvroute router process', () => {
  let child: ChildProcess | undefined;
  let engine: http.Server | undefined;
  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await new Promise<void>((resolve) => (engine ? engine.close(() => resolve()) : resolve()));
  });

  it('logs JSON, serves /readyz, and exits 0 on SIGTERM after draining', async () => {
    engine = http.createServer((_req, res) => res.end('vllm:num_requests_waiting 0\nvllm:kv_cache_usage_perc 0\n'));
    await new Promise<void>((resolve) => engine!.listen(0, '127.0.0.1', resolve));
    const endpoint = `127.0.0.1:${(engine.address() as AddressInfo).port}`;
    const bin = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../bin/kvroute.js');
    const config =
      'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins: [{type: queue-scorer}]\nschedulingProfiles: [{name: default, plugins: [{pluginRef: queue-scorer}]}]\n';
    child = spawn(
      process.execPath,
      [
        bin,
        'router',
        `--endpoints=${endpoint}`,
        '--grpc-port=0',
        '--grpc-health-port=0',
        '--metrics-port=0',
        '--secure-serving=false',
        `--config-text=${config}`,
        '--drain-timeout=2s',
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    const lines: Array<Record<string, unknown>> = [];
    let buffered = '';
    child.stderr!.on('data', (d: Buffer) => {
      buffered += d.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      for (const p of parts) if (p.trim()) lines.push(JSON.parse(p) as Record<string, unknown>);
    });
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));

    const deadline = Date.now() + 20_000;
    let started: Record<string, unknown> | undefined;
    while (!(started = lines.find((l) => l.msg === 'router started'))) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`router did not start: ${JSON.stringify(lines)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(started).toMatchObject({ level: 'info', component: 'router', endpoints: 'static', config: '--config-text' });
    expect((await fetch(`http://127.0.0.1:${started.metricsPort as number}/readyz`)).status).toBe(200);

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['shutting down', 'router stopped', 'shutdown complete']));
  });
});
