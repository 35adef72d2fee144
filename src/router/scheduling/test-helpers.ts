// Builders for scheduling tests: endpoints with or without fresh metrics, requests, and configs
// written the way users write them.

import { Registry } from 'prom-client';
import { validateEndpointPickerConfig, type EndpointPickerConfig } from '../../api/endpoint-picker-config.ts';
import { silentLogger } from '../../common/log.ts';
import { mulberry32 } from '../../common/random.ts';
import type { EndpointMetrics, EndpointState, InferenceRequest } from '../types.ts';
import { endpointLoad } from '../endpoints/load.ts';
import { buildScheduler, type ClosableScheduler, type SchedulerDeps } from './build.ts';

export function metrics(overrides: Partial<EndpointMetrics> = {}): EndpointMetrics {
  return {
    waitingRequests: 0,
    runningRequests: 0,
    kvCacheUsage: 0,
    runningLoras: [],
    waitingLoras: [],
    maxLoras: 0,
    scrapedAtMs: 0,
    inFlightAtScrape: 0,
    ...overrides,
  };
}

/** An endpoint at `address` (ip:port); `metrics: null` means stale. Its load is computed as EndpointSet does. */
export function endpoint(
  address: string,
  state: { metrics?: Partial<EndpointMetrics> | null; inFlight?: number; name?: string } = {},
): EndpointState {
  const bracket = address.startsWith('[');
  const colon = address.lastIndexOf(':');
  const ip = bracket ? address.slice(1, address.indexOf(']')) : address.slice(0, colon);
  const port = Number(address.slice(colon + 1));
  const m = state.metrics === null ? null : metrics(state.metrics ?? {});
  const inFlight = state.inFlight ?? 0;
  return {
    endpoint: { address, ip, port, name: state.name ?? address, namespace: 'default', labels: {} },
    metrics: m,
    inFlight,
    load: endpointLoad(inFlight, m),
  };
}

export function request(overrides: Partial<InferenceRequest> = {}): InferenceRequest {
  return {
    requestId: 'req-1',
    path: '/v1/completions',
    kind: 'completions',
    requestedModel: 'm',
    targetModel: 'm',
    priority: 0,
    stream: false,
    headers: {},
    bodyBytes: 0,
    ...overrides,
  };
}

/** One plugin of a test config; `inProfile: false` for producers, which profiles do not list. */
type PluginLine = { type: string; name?: string; parameters?: Record<string, unknown>; weight?: number; inProfile?: boolean };

/** A one-profile config: every plugin listed, and referenced from the profile (with its weight) unless inProfile is false. */
export function profileConfig(plugins: PluginLine[]): EndpointPickerConfig {
  return validateEndpointPickerConfig({
    apiVersion: 'llm-d.ai/v1alpha1',
    kind: 'EndpointPickerConfig',
    plugins: plugins.map(({ type, name, parameters }) => ({ type, ...(name ? { name } : {}), ...(parameters ? { parameters } : {}) })),
    schedulingProfiles: [
      {
        name: 'default',
        plugins: plugins
          .filter((p) => p.inProfile !== false)
          .map((p) => ({ pluginRef: p.name ?? p.type, ...(p.weight !== undefined ? { weight: p.weight } : {}) })),
      },
    ],
  });
}

/** A scheduler on a fresh registry with a seeded random source. */
export function testScheduler(config: EndpointPickerConfig, deps: Partial<SchedulerDeps> = {}): ClosableScheduler & { registry: Registry } {
  const registry = deps.registry ?? new Registry();
  const scheduler = buildScheduler(config, { log: silentLogger, registry, random: mulberry32(7), ...deps });
  return Object.assign(scheduler, { registry });
}

/** The value of a counter or histogram count series in the registry's text output (0 when absent). */
export async function metricValue(registry: Registry, series: string): Promise<number> {
  const text = await registry.metrics();
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return 0;
}
