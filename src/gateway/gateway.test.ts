import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import { createLogger } from '../common/log.ts';
import { startGateway, type RunningGateway } from './gateway.ts';
import { startEchoUpstream, startRecordingProcessor, type EchoUpstream, type RecordingProcessor } from './testing.ts';

describe('startGateway (built-in)', () => {
  let upstream: EchoUpstream;
  let processor: RecordingProcessor;
  let gateway: RunningGateway;
  const lines: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    upstream = await startEchoUpstream();
    processor = await startRecordingProcessor({ destination: () => upstream.address });
    gateway = await startGateway(
      {
        host: '127.0.0.1',
        port: 0,
        router: `127.0.0.1:${processor.port}`,
        routerTls: false,
        failureMode: 'FailClose',
        fallbackEndpoints: [],
        adminPort: 0,
        pickTimeoutMs: 10_000,
      },
      { log: createLogger({ write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) }), registry: new Registry() },
    );
  });

  afterAll(async () => {
    await gateway.close();
    await Promise.all([processor.close(), upstream.close()]);
  });

  it('logs one structured "listening" line with the bound ports', () => {
    const listening = lines.filter((l) => l.msg === 'listening');
    expect(listening).toEqual([
      expect.objectContaining({
        level: 'info',
        what: 'gateway',
        implementation: 'builtin',
        port: gateway.port,
        adminPort: gateway.adminPort,
        failureMode: 'FailClose',
      }),
    ]);
    expect(gateway.port).toBeGreaterThan(0);
  });

  it('routes through the router and reports requests, pick and upstream latency on the admin port', async () => {
    expect(gateway.implementation).toBe('builtin');
    const res = await fetch(`http://127.0.0.1:${gateway.port}/v1/completions`, { method: 'POST', body: '{"model":"m"}' });
    expect(res.status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${gateway.adminPort}/healthz`)).status).toBe(200);
    const metrics = await (await fetch(`http://127.0.0.1:${gateway.adminPort}/metrics`)).text();
    expect(metrics).toMatch(/kvroute_gateway_requests_total\{code="200"\} 1/);
    expect(metrics).toMatch(/kvroute_gateway_extproc_pick_seconds_count 1/);
    expect(metrics).toMatch(/kvroute_gateway_upstream_seconds_count 1/);
  });
});
