// The optional APIs the operator uses when a cluster has them (Istio's EnvoyFilter and DestinationRule,
// GIE's InferencePool, the Prometheus operator's ServiceMonitor): found through API discovery,
// re-checked with backoff while absent (5 s doubling to 5 min) and every 5 min while served, logged once
// per change, and announced to listeners so watches start only once their API is served.

import type { Logger } from '../../common/log.ts';
import { isNotFound, type KubeApi } from '../../common/kube/kube-client.ts';
import { systemClock, type Clock } from './workqueue.ts';

/** One kind of an API group version, as discovery lists it. */
export interface ApiKind {
  group: string;
  version: string;
  kind: string;
  /** The resource name (plural) the kind is served under. */
  plural: string;
}

export const ENVOY_FILTER_API: ApiKind = { group: 'networking.istio.io', version: 'v1alpha3', kind: 'EnvoyFilter', plural: 'envoyfilters' };
export const GIE_INFERENCE_POOL_API: ApiKind = {
  group: 'inference.networking.k8s.io',
  version: 'v1',
  kind: 'InferencePool',
  plural: 'inferencepools',
};
export const DESTINATION_RULE_API: ApiKind = {
  group: 'networking.istio.io',
  version: 'v1',
  kind: 'DestinationRule',
  plural: 'destinationrules',
};
export const SERVICE_MONITOR_API: ApiKind = {
  group: 'monitoring.coreos.com',
  version: 'v1',
  kind: 'ServiceMonitor',
  plural: 'servicemonitors',
};

/** Every optional API the operator knows, in the order they are checked. */
export const OPTIONAL_APIS: readonly ApiKind[] = [ENVOY_FILTER_API, DESTINATION_RULE_API, GIE_INFERENCE_POOL_API, SERVICE_MONITOR_API];

/** "networking.istio.io/v1alpha3 EnvoyFilter": how conditions and logs name an API. */
export const apiName = (api: ApiKind): string => `${api.group}/${api.version} ${api.kind}`;

/** The CRD that would serve an API, when a CRD serves it: `<plural>.<group>`. */
export const crdName = (api: ApiKind): string => `${api.plural}.${api.group}`;

/** What builders and reconcilers read: whether the cluster serves a kind now. */
export interface ServedApis {
  isServed(group: string, version: string, kind: string): boolean;
}

/** ServedApis plus change notifications, for what must start or stop with an API (a watch, a requeue). */
export interface OptionalApiEvents extends ServedApis {
  /**
   * `listener` runs whenever isServed() changes its answer for an API (false before the first discovery,
   * so a served API found by the first one is a change); returns a function that unsubscribes.
   */
  onChange(listener: (api: ApiKind, served: boolean) => void): () => void;
}

/** A fixed set of served kinds: for `kvroute render` (no cluster) and unit tests. */
export function staticServedApis(served: readonly ApiKind[]): ServedApis {
  const keys = new Set(served.map((a) => `${a.group}/${a.version}/${a.kind}`));
  return { isServed: (group, version, kind) => keys.has(`${group}/${version}/${kind}`) };
}

/** An APIResourceList as GET /apis/<group>/<version> returns it; only the fields read here. */
interface ApiResourceList {
  resources?: { name?: string; kind?: string }[];
}

export interface OptionalApisOptions {
  client: KubeApi;
  apis?: readonly ApiKind[];
  log: Logger;
  clock?: Clock;
  /** First re-check after an API is found absent; doubles per check up to maxDelayMs. */
  initialDelayMs?: number;
  /** Longest wait between checks, and the interval at which a served API is checked for removal. */
  maxDelayMs?: number;
  /**
   * First re-check after a hint (recheck()) found the API still absent: a CRD is Established before
   * the API server's discovery lists it, so the follow-up comes sooner than the regular backoff.
   */
  hintDelayMs?: number;
}

interface ApiState {
  api: ApiKind;
  /** undefined until the first discovery answered. */
  served: boolean | undefined;
  delayMs: number;
  timer: unknown;
  /** A discovery request failed (not a 404) and the failure was logged; cleared on the next answer. */
  failing: boolean;
  checking: boolean;
  /** A re-check was asked for while one was in flight. */
  again: boolean;
}

const DEFAULT_INITIAL_DELAY_MS = 5_000;
const DEFAULT_MAX_DELAY_MS = 300_000;
const DEFAULT_HINT_DELAY_MS = 1_000;

export class OptionalApis implements OptionalApiEvents {
  private readonly client: KubeApi;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly initialDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly hintDelayMs: number;
  private readonly states = new Map<string, ApiState>();
  private readonly listeners = new Set<(api: ApiKind, served: boolean) => void>();
  private started = false;
  private stopped = false;

  constructor(options: OptionalApisOptions) {
    this.client = options.client;
    this.log = options.log.child({ component: 'optional-apis' });
    this.clock = options.clock ?? systemClock;
    this.initialDelayMs = options.initialDelayMs ?? DEFAULT_INITIAL_DELAY_MS;
    this.maxDelayMs = options.maxDelayMs ?? DEFAULT_MAX_DELAY_MS;
    this.hintDelayMs = Math.min(options.hintDelayMs ?? DEFAULT_HINT_DELAY_MS, this.initialDelayMs);
    for (const api of options.apis ?? OPTIONAL_APIS) {
      this.states.set(keyOf(api.group, api.version, api.kind), {
        api,
        served: undefined,
        delayMs: this.initialDelayMs,
        timer: undefined,
        failing: false,
        checking: false,
        again: false,
      });
    }
  }

  isServed(group: string, version: string, kind: string): boolean {
    return this.states.get(keyOf(group, version, kind))?.served === true;
  }

  /** The APIs checked, with what discovery last said (undefined: not answered yet). */
  snapshot(): { api: ApiKind; served: boolean | undefined }[] {
    return [...this.states.values()].map((s) => ({ api: s.api, served: s.served }));
  }

  onChange(listener: (api: ApiKind, served: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Checks every API once (resolves when each has answered or failed), then keeps re-checking. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await Promise.all([...this.states.values()].map((s) => this.check(s)));
  }

  stop(): void {
    this.stopped = true;
    for (const s of this.states.values()) {
      if (s.timer !== undefined) this.clock.clearTimeout(s.timer);
      s.timer = undefined;
    }
  }

  /**
   * A hint that an API may have changed (its CRD was created, updated or deleted, a watch of it failed):
   * checks it now and, if it is still absent, again after hintDelayMs, doubling from there, since a CRD
   * on its way to Established shows up in discovery within seconds.
   */
  recheck(api: ApiKind): void {
    const s = this.states.get(keyOf(api.group, api.version, api.kind));
    if (!s || !this.started || this.stopped) return;
    s.delayMs = this.hintDelayMs;
    void this.check(s);
  }

  private async check(s: ApiState): Promise<void> {
    if (this.stopped) return;
    if (s.checking) {
      s.again = true;
      return;
    }
    s.checking = true;
    if (s.timer !== undefined) this.clock.clearTimeout(s.timer);
    s.timer = undefined;
    try {
      const served = await this.discover(s);
      if (served !== undefined) this.record(s, served);
    } finally {
      s.checking = false;
    }
    if (this.stopped) return;
    if (s.again) {
      s.again = false;
      return this.check(s);
    }
    this.schedule(s);
  }

  /** true/false from discovery; undefined when the request failed for another reason (kept as it was). */
  private async discover(s: ApiState): Promise<boolean | undefined> {
    const { group, version, kind } = s.api;
    try {
      const list = await this.client.get<ApiResourceList>(group ? `/apis/${group}/${version}` : `/api/${version}`);
      if (s.failing) this.log.info('API discovery answers again', { api: apiName(s.api) });
      s.failing = false;
      // Subresources (envoyfilters/status) list the kind too; only the resource itself counts.
      return (list?.resources ?? []).some((r) => r.kind === kind && r.name !== undefined && !r.name.includes('/'));
    } catch (err) {
      if (isNotFound(err)) {
        s.failing = false;
        return false;
      }
      if (!s.failing)
        this.log.warn('API discovery failed; keeping the last answer and retrying with backoff', { api: apiName(s.api), err });
      s.failing = true;
      return undefined;
    }
  }

  private record(s: ApiState, served: boolean): void {
    const before = s.served;
    s.served = served;
    if (before === served) return;
    if (served) {
      s.delayMs = this.initialDelayMs;
      this.log.info('optional API is served; starting what needs it', { api: apiName(s.api) });
    } else if (before === undefined) {
      this.log.info('optional API is not served; pools that need it report it in their status until it is', {
        api: apiName(s.api),
        recheckFromMs: this.initialDelayMs,
        recheckMaxMs: this.maxDelayMs,
      });
    } else {
      this.log.warn('optional API is no longer served; stopping what needs it', { api: apiName(s.api) });
    }
    // Before the first answer isServed() said false, so only a served API is news to listeners then.
    if (before === undefined && !served) return;
    for (const l of [...this.listeners]) {
      try {
        l(s.api, served);
      } catch (err) {
        this.log.error('optional API listener failed', { api: apiName(s.api), err });
      }
    }
  }

  private schedule(s: ApiState): void {
    // Served: look again at the longest interval, to notice a removal the watch did not report.
    const delay = s.served === true ? this.maxDelayMs : s.delayMs;
    if (s.served !== true) s.delayMs = Math.min(s.delayMs * 2, this.maxDelayMs);
    s.timer = this.clock.setTimeout(() => {
      s.timer = undefined;
      void this.check(s);
    }, delay);
  }
}

function keyOf(group: string, version: string, kind: string): string {
  return `${group}/${version}/${kind}`;
}
