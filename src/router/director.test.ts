import { describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import { DEFAULT_ENDPOINT_PICKER_CONFIG } from '../api/endpoint-picker-config.ts';
import { silentLogger } from '../common/log.ts';
import { mulberry32 } from '../common/random.ts';
import { DEFAULT_SATURATION, Director, RouteError, hostOf, type RouteInput, type RoutingState } from './director.ts';
import { endpointLoad } from './endpoints/load.ts';
import { createRouterMetrics } from './metrics.ts';
import { ModelTable } from './request/models.ts';
import type { ParsedBody } from './request/parse.ts';
import { buildScheduler } from './scheduling/build.ts';
import {
  SchedulingError,
  type Endpoint,
  type EndpointMetrics,
  type EndpointSource,
  type EndpointState,
  type InferenceRequest,
  type PickTime,
  type Scheduler,
  type SchedulingResult,
} from './types.ts';

const NOW = 1_000_000;

function endpoint(ip: string, port = 8000): Endpoint {
  return { address: `${ip}:${port}`, ip, port, name: ip, namespace: 'default', labels: {} };
}

function metrics(overrides: Partial<EndpointMetrics> = {}): EndpointMetrics {
  return {
    waitingRequests: 0,
    runningRequests: 0,
    kvCacheUsage: 0,
    runningLoras: [],
    waitingLoras: [],
    maxLoras: 0,
    scrapedAtMs: NOW,
    inFlightAtScrape: 0,
    ...overrides,
  };
}

/** A fixed set of endpoint states, recording requestStarted/requestFinished calls. */
function source(states: EndpointState[]): EndpointSource & { log: string[] } {
  const log: string[] = [];
  return {
    log,
    snapshot: () => states,
    synced: () => true,
    requestStarted: (a) => log.push(`+${a}`),
    requestFinished: (a) => log.push(`-${a}`),
    close: async () => {},
  };
}

class FirstCandidate implements Scheduler {
  seen: InferenceRequest[] = [];
  async schedule(request: InferenceRequest, candidates: EndpointState[]): Promise<SchedulingResult> {
    this.seen.push(request);
    return {
      targets: candidates.slice(0, 1).map((c) => c.endpoint),
      profile: 'p',
      scores: {},
      predictedPrefix: { matchedBlocks: 3, totalBlocks: 4 },
    };
  }
}

const completions = (model: string): ParsedBody => ({ kind: 'completions', path: '/v1/completions', model, prompt: 'hi', stream: false });
const input = (parsed: ParsedBody, extra: Partial<RouteInput> = {}): RouteInput => ({
  requestId: 'r1',
  parsed,
  headers: {},
  bodyBytes: 10,
  ...extra,
});

function director(states: EndpointState[], state: Partial<RoutingState> = {}) {
  const scheduler = new FirstCandidate();
  const routing: RoutingState = { scheduler, models: new ModelTable([]), saturation: DEFAULT_SATURATION, ...state };
  const endpoints = source(states);
  const registry = new Registry();
  const d = new Director({ endpoints, state: () => routing, log: silentLogger, metrics: createRouterMetrics(registry), now: () => NOW });
  return { d, scheduler, routing, endpoints, registry };
}

async function refusal(p: Promise<unknown>): Promise<RouteError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(RouteError);
    return err as RouteError;
  }
  throw new Error('expected a RouteError');
}

const sheddable = new ModelTable([{ modelName: 'batch', criticality: 'Sheddable' }, { modelName: 'chat' }]);

describe('hostOf', () => {
  it('takes the host of ip:port, [v6]:port, a bare IPv4 and a bare IPv6', () => {
    expect(hostOf('10.0.0.1:8000')).toBe('10.0.0.1');
    expect(hostOf('[fd00::1]:8000')).toBe('fd00::1');
    expect(hostOf('10.0.0.1')).toBe('10.0.0.1');
    expect(hostOf('fd00::1')).toBe('fd00::1');
  });
});

describe('Director admission', () => {
  const saturated = metrics({ waitingRequests: 6 });
  const full = metrics({ kvCacheUsage: 0.9 });
  const stale = metrics({ scrapedAtMs: NOW - 201 });

  it('sheds a sheddable request with 429 when every candidate is saturated (queue, KV cache or stale metrics)', async () => {
    const states = [saturated, full, stale].map((m, i) => ({ endpoint: endpoint(`10.0.0.${i}`), metrics: m, inFlight: 0, load: 0 }));
    const { d, scheduler } = director(states, { models: sheddable });
    const err = await refusal(d.route(input(completions('batch'))));
    expect([err.status, err.reason]).toEqual([429, 'rejected-saturated']);
    expect(scheduler.seen).toEqual([]);
  });

  it('admits a sheddable request while one candidate has room', async () => {
    const states = [saturated, metrics()].map((m, i) => ({ endpoint: endpoint(`10.0.0.${i}`), metrics: m, inFlight: 0, load: 0 }));
    const { d } = director(states, { models: sheddable });
    await expect(d.route(input(completions('batch')))).resolves.toBeDefined();
  });

  it('never sheds a standard or critical request', async () => {
    const states = [{ endpoint: endpoint('10.0.0.1'), metrics: saturated, inFlight: 0, load: 0 }];
    const { d } = director(states, { models: sheddable });
    await expect(d.route(input(completions('chat')))).resolves.toBeDefined();
  });

  it('admits a sheddable request when no candidate has metrics at all (saturation unknown)', async () => {
    const states = [{ endpoint: endpoint('10.0.0.1'), metrics: null, inFlight: 0, load: 0 }];
    const { d } = director(states, { models: sheddable });
    await expect(d.route(input(completions('batch')))).resolves.toBeDefined();
  });

  it('uses the thresholds of the current config', async () => {
    const states = [{ endpoint: endpoint('10.0.0.1'), metrics: saturated, inFlight: 0, load: 0 }];
    const { d, routing } = director(states, { models: sheddable });
    routing.saturation = { ...DEFAULT_SATURATION, queueDepthThreshold: 10 };
    await expect(d.route(input(completions('batch')))).resolves.toBeDefined();
  });
});

const states2 = () => [endpoint('10.0.0.1'), endpoint('10.0.0.2')].map((e) => ({ endpoint: e, metrics: metrics(), inFlight: 0, load: 0 }));

describe('Director routing', () => {
  const states = [endpoint('10.0.0.1'), endpoint('10.0.0.2')].map((e) => ({ endpoint: e, metrics: metrics(), inFlight: 0, load: 0 }));

  it('builds the InferenceRequest from the parsed body, the model table and the headers', async () => {
    const { d, scheduler } = director(states, {
      models: new ModelTable([{ modelName: 'chat', targetModels: [{ name: 'lora' }] }], { baseModel: 'base' }),
    });
    const parsed: ParsedBody = {
      kind: 'chat',
      path: '/v1/chat/completions',
      model: 'chat',
      messages: [{ role: 'user', content: 'x' }],
      cacheSalt: 's',
      stream: true,
    };
    const { request, result } = await d.route(input(parsed, { headers: { 'x-session-token': 't' }, bodyBytes: 99 }));
    expect(request).toEqual({
      requestId: 'r1',
      path: '/v1/chat/completions',
      kind: 'chat',
      requestedModel: 'chat',
      targetModel: 'lora',
      priority: 0,
      loraName: 'lora',
      messages: [{ role: 'user', content: 'x' }],
      cacheSalt: 's',
      stream: true,
      headers: { 'x-session-token': 't' },
      bodyBytes: 99,
    });
    expect(scheduler.seen).toEqual([request]);
    expect(result.targets[0]!.address).toBe('10.0.0.1:8000');
  });

  it('answers 404 for an unknown model on an inference path, but passes any model on other paths', async () => {
    const { d } = director(states, { models: new ModelTable([{ modelName: 'chat' }]) });
    const err = await refusal(d.route(input(completions('nope'))));
    expect([err.status, err.reason]).toEqual([404, 'model-not-found']);
    const other = await d.route(input({ kind: 'other', path: '/v1/embeddings', model: 'nope', stream: false }));
    expect(other.request.targetModel).toBe('nope');
  });

  it('reads the scheduler anew for every request, so a reload takes effect at once', async () => {
    const { d, routing, scheduler } = director(states);
    await d.route(input(completions('m')));
    const next = new FirstCandidate();
    routing.scheduler = next;
    await d.route(input(completions('m')));
    expect([scheduler.seen.length, next.seen.length]).toEqual([1, 1]);
  });

  it('answers 503 when the scheduler returns no target', async () => {
    const { d, routing } = director(states);
    routing.scheduler = { schedule: async () => ({ targets: [], profile: 'p', scores: {} }) };
    const err = await refusal(d.route(input(completions('m'))));
    expect([err.status, err.reason]).toEqual([503, 'rejected-no-endpoints']);
  });

  it('records the request, the pick, the scheduling time and the predicted prefix hit', async () => {
    const { d, registry } = director(states);
    await d.route(input(completions('m')));
    const text = await registry.metrics();
    expect(text).toContain('kvroute_router_requests_total{model="m",target_model="m"} 1');
    expect(text).toContain('kvroute_router_endpoint_picks_total{endpoint="10.0.0.1:8000"} 1');
    expect(text).toContain('kvroute_router_scheduling_duration_seconds_count 1');
    expect(text).toContain('kvroute_router_predicted_prefix_hit_ratio_sum 0.75');
  });
});

/** Endpoints whose in-flight counts (and so load) really move with requestStarted/requestFinished. */
function countingSource(endpoints: Endpoint[]): EndpointSource & { inFlight: Map<string, number> } {
  const inFlight = new Map(endpoints.map((e) => [e.address, 0]));
  return {
    inFlight,
    snapshot: () =>
      endpoints.map((e) => {
        const n = inFlight.get(e.address)!;
        return { endpoint: e, metrics: null, inFlight: n, load: endpointLoad(n, null) };
      }),
    synced: () => true,
    requestStarted: (a) => void inFlight.set(a, inFlight.get(a)! + 1),
    requestFinished: (a) => void inFlight.set(a, Math.max(0, inFlight.get(a)! - 1)),
    close: async () => {},
  };
}

describe('Director in-flight accounting', () => {
  it('counts the pick in flight through PickTime before the scheduler answers, and hands the decision that count', async () => {
    const { d, endpoints, routing } = director(states2());
    let countedBeforeAnswer: string[] = [];
    routing.scheduler = {
      async schedule(_r, candidates, pickTime?: PickTime) {
        await Promise.resolve();
        expect(pickTime!.refresh().map((c) => c.endpoint.address)).toEqual(candidates.map((c) => c.endpoint.address));
        pickTime!.reserve('10.0.0.2:8000');
        countedBeforeAnswer = [...endpoints.log];
        return { targets: [endpoint('10.0.0.2')], profile: 'p', scores: {} };
      },
    };
    const decision = await d.route(input(completions('m')));
    expect(countedBeforeAnswer).toEqual(['+10.0.0.2:8000']);
    expect(decision.inFlight.address).toBe('10.0.0.2:8000');
    decision.inFlight.release();
    expect(endpoints.log).toEqual(['+10.0.0.2:8000', '-10.0.0.2:8000']);
  });

  it('counts the first target of a scheduler that does not reserve, and releases a reservation when scheduling fails', async () => {
    const { d, endpoints, routing } = director(states2());
    const decision = await d.route(input(completions('m')));
    expect([decision.inFlight.address, endpoints.log]).toEqual(['10.0.0.1:8000', ['+10.0.0.1:8000']]);

    routing.scheduler = {
      async schedule(_r, _c, pickTime?: PickTime) {
        pickTime!.reserve('10.0.0.2:8000');
        throw new SchedulingError(503, 'rejected-no-endpoints', 'gone');
      },
    };
    await refusal(d.route(input(completions('m'))));
    expect(endpoints.log).toEqual(['+10.0.0.1:8000', '+10.0.0.2:8000', '-10.0.0.2:8000']);
  });

  it('bounds a simultaneous burst of hot-prefix requests: the warm pod takes at most the bound, the rest spill', async () => {
    const pods = [endpoint('10.0.0.1'), endpoint('10.0.0.2'), endpoint('10.0.0.3')];
    const endpoints = countingSource(pods);
    // The indexer answers after a macrotask, as a real one does: every request of the burst is
    // waiting for it at once, before any has been picked.
    const scheduler = buildScheduler(DEFAULT_ENDPOINT_PICKER_CONFIG, {
      log: silentLogger,
      registry: new Registry(),
      random: mulberry32(3),
      indexer: () => ({
        score: () => new Promise((resolve) => setImmediate(() => resolve({ scores: { '10.0.0.1': 8 }, totalBlocks: 8 }))),
      }),
    });
    const routing: RoutingState = { scheduler, models: new ModelTable([]), saturation: DEFAULT_SATURATION };
    const d = new Director({ endpoints, state: () => routing, log: silentLogger, now: () => NOW });

    const burst = await Promise.all(Array.from({ length: 6 }, () => d.route(input(completions('m')))));
    const picks = burst.map((b) => b.result.targets[0]!.address);
    // Bounded loads with c = 1.25 over 3 pods: nobody above ceil(1.25 * 6 / 3) = 3.
    const onWarm = picks.filter((a) => a === '10.0.0.1:8000').length;
    expect({ onWarm, picks }).toEqual({ onWarm: 3, picks: expect.any(Array) });
    expect([...endpoints.inFlight.values()].reduce((a, b) => a + b, 0)).toBe(6);
    for (const b of burst) b.inFlight.release();
    expect([...endpoints.inFlight.values()]).toEqual([0, 0, 0]);
    scheduler.close();
  });

  it('starts once, moves to the serving endpoint, and finishes exactly once', () => {
    const { d, endpoints } = director([]);
    const f = d.begin('a:1');
    f.moveTo('a:1');
    f.moveTo('b:1');
    f.release();
    f.release();
    f.moveTo('c:1');
    expect(endpoints.log).toEqual(['+a:1', '-a:1', '+b:1', '-b:1']);
  });
});
