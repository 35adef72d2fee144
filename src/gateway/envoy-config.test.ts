// The gateway's Envoy config, read back as data. That Envoy accepts it is e2e/envoy-config.test.ts's
// job; that it behaves (FailOpen with a router SIGKILLed under traffic) is e2e/gateway-failopen.test.ts's.

import { describe, expect, it } from '@jest/globals';
import YAML from 'yaml';
import { envoyGatewayConfig, type EnvoyGatewayOptions } from './envoy-config.ts';

type Json = Record<string, any>;

const base: EnvoyGatewayOptions = { listenPort: 0, adminPort: 0, eppPort: 9002, eppTls: true, failureModeAllow: false };
const pods = [
  { host: '127.0.0.2', port: 8000 },
  { host: '127.0.0.3', port: 8000 },
];

function parse(opts: Partial<EnvoyGatewayOptions>): Json {
  return YAML.parse(envoyGatewayConfig({ ...base, ...opts })) as Json;
}
const hcm = (c: Json): Json => c.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
const extProc = (c: Json): Json => hcm(c).http_filters[0].typed_config;
const routes = (c: Json): Json[] => hcm(c).route_config.virtual_hosts[0].routes;
const cluster = (c: Json, name: string): Json => c.static_resources.clusters.find((x: Json) => x.name === name);

describe('envoyGatewayConfig body modes', () => {
  it('streams both bodies full duplex under FailClose, as GIE does, with no raised buffer limit', () => {
    const c = parse({ failureModeAllow: false, fallback: { endpoints: pods } });
    expect(extProc(c).processing_mode).toMatchObject({
      request_body_mode: 'FULL_DUPLEX_STREAMED',
      response_body_mode: 'FULL_DUPLEX_STREAMED',
    });
    expect(routes(c).map((r) => r.request_body_buffer_limit)).toEqual([undefined, undefined]);
  });

  it("buffers the request body and streams the response under FailOpen, raising the routes' buffer limit to the router's bound", () => {
    const c = parse({ failureModeAllow: true, fallback: { endpoints: pods } });
    expect(extProc(c).processing_mode).toEqual({
      request_header_mode: 'SEND',
      response_header_mode: 'SEND',
      request_body_mode: 'BUFFERED',
      response_body_mode: 'STREAMED',
      request_trailer_mode: 'SEND',
      response_trailer_mode: 'SEND',
    });
    expect(routes(c).map((r) => r.request_body_buffer_limit)).toEqual([64 * 1024 * 1024, 64 * 1024 * 1024]);
    expect(routes(parse({ failureModeAllow: true, maxRequestBodyBytes: 1000 })).map((r) => r.request_body_buffer_limit)).toEqual([1000]);
  });

  it('rejects a body limit Envoy cannot take, naming the field', () => {
    for (const bad of [0, -1, 1.5, 2 ** 32])
      expect(() => envoyGatewayConfig({ ...base, failureModeAllow: true, maxRequestBodyBytes: bad })).toThrow(
        /maxRequestBodyBytes: expected an integer/,
      );
  });
});

describe('envoyGatewayConfig router health', () => {
  it('marks a live router down only after two slow checks, each allowed half an interval, and up after one', () => {
    const c = parse({ failureModeAllow: true, fallback: { endpoints: pods, eppHealthPort: 9003, healthCheckIntervalMs: 500 } });
    const [check] = cluster(c, 'epp').health_checks;
    expect(check).toMatchObject({
      timeout: '0.25s',
      interval: '0.5s',
      unhealthy_threshold: 2,
      healthy_threshold: 1,
      no_traffic_interval: '0.5s',
    });
    expect(cluster(c, 'epp').common_lb_config).toEqual({ healthy_panic_threshold: { value: 0 } });
  });

  it('ejects a router on its first refused connection, with or without the health check; a 5xx never ejects', () => {
    for (const c of [parse({}), parse({ failureModeAllow: true, fallback: { endpoints: pods, eppHealthPort: 9003 } })]) {
      expect(cluster(c, 'epp').outlier_detection).toMatchObject({
        split_external_local_origin_errors: true,
        consecutive_local_origin_failure: 1,
        enforcing_consecutive_local_origin_failure: 100,
        enforcing_consecutive_5xx: 0,
        enforcing_consecutive_gateway_failure: 0,
        max_ejection_percent: 100,
      });
    }
  });

  it('rejects a health check interval below 10 ms, naming the field', () => {
    expect(() => parse({ fallback: { endpoints: pods, eppHealthPort: 9003, healthCheckIntervalMs: 0 } })).toThrow(/healthCheckIntervalMs/);
  });
});

describe('envoyGatewayConfig fallback pool', () => {
  it('health-checks the pods on /health (or the given path) and ejects one that refuses a connection', () => {
    const c = parse({ failureModeAllow: true, fallback: { endpoints: pods } });
    const fallback = cluster(c, 'pool_fallback');
    expect(fallback.health_checks[0]).toMatchObject({
      http_health_check: { path: '/health' },
      unhealthy_threshold: 2,
      healthy_threshold: 1,
    });
    expect(fallback.outlier_detection).toMatchObject({ split_external_local_origin_errors: true, consecutive_local_origin_failure: 1 });
    expect(
      cluster(parse({ fallback: { endpoints: pods, podHealthPath: '/ready' } }), 'pool_fallback').health_checks[0].http_health_check,
    ).toEqual({
      path: '/ready',
    });
    expect(() => parse({ fallback: { endpoints: pods, podHealthPath: 'health' } })).toThrow(/podHealthPath: expected a path/);
  });

  it('retries a request without a pick on another pod when its pod could not be reached, and never a routed one', () => {
    const [routed, fallback] = routes(parse({ failureModeAllow: true, fallback: { endpoints: pods } }));
    expect(routed!.route.retry_policy).toBeUndefined();
    expect(fallback!.route.cluster).toBe('pool_fallback');
    expect(fallback!.route.retry_policy).toMatchObject({
      retry_on: 'connect-failure,refused-stream,reset-before-request',
      num_retries: 2,
      retry_host_predicate: [{ name: 'envoy.retry_host_predicates.previous_hosts' }],
    });
  });
});
