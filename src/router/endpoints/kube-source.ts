// The endpoint source of Kubernetes mode: watches the namespace's serving pods and, with --pool-name,
// the InferencePool that selects them (selector and port changes re-filter at once), and keeps the
// endpoint set equal to the Ready pods x target ports. Decisions are in pool-selection.ts; this
// module owns the watches, the retry of a pool that is missing or forbidden, and the logs.

import type { KubeConfig, KubernetesObject, V1Pod } from '@kubernetes/client-node';
import { Counter, type Registry } from 'prom-client';
import { Informer } from '../../common/kube/informer.ts';
import { KubeApiError, KubeClient } from '../../common/kube/kube-client.ts';
import type { Logger } from '../../common/log.ts';
import type { Endpoint, EndpointSource } from '../types.ts';
import { EndpointSet } from './endpoint-set.ts';
import type { ScrapeOptions } from './metrics-scraper.ts';
import { GIE_GROUP, podEndpoints, poolCollectionPath, selectionFromPool, type PoolSelection, type ServingLabel } from './pool-selection.ts';

export interface KubeEndpointSourceOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** The InferencePool to follow; or give selector and targetPorts instead. */
  poolName?: string;
  /** The pool's API group; default inference.networking.k8s.io (GIE v1). */
  poolGroup?: string;
  selector?: Record<string, string>;
  targetPorts?: number[];
  servingLabel: ServingLabel;
  scrape: ScrapeOptions;
  log: Logger;
  registry: Registry;
  /** First and largest delay between attempts to read a missing or forbidden pool (ms); default 500 and 30,000. */
  retry?: { initialMs: number; maxMs: number };
}

/** Checks the options' combination and ports; throws an Error naming the flag. */
function fixedSelection(options: KubeEndpointSourceOptions): PoolSelection | null {
  const hasSelector = options.selector !== undefined || options.targetPorts !== undefined;
  if (options.poolName !== undefined && hasSelector)
    throw new Error('--pool-name and --endpoint-selector/--endpoint-target-ports are alternatives; give one');
  if (options.poolName === undefined && !hasSelector)
    throw new Error('Kubernetes mode needs --pool-name, or --endpoint-selector with --endpoint-target-ports');
  if (options.poolName !== undefined) {
    if (options.poolName === '') throw new Error('--pool-name: expected a name');
    return null;
  }
  if (!options.selector || Object.keys(options.selector).length === 0)
    throw new Error('--endpoint-selector: expected at least one key=value');
  const ports = options.targetPorts ?? [];
  if (ports.length === 0) throw new Error('--endpoint-target-ports: expected at least one port');
  for (const p of ports)
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`--endpoint-target-ports: port ${p} is outside 1-65535`);
  return { selector: { ...options.selector }, targetPorts: [...new Set(ports)] };
}

function describeKubeError(err: unknown, what: string, group: string): string {
  if (err instanceof KubeApiError) {
    if (err.status === 403)
      return `${what}: forbidden; the router's ServiceAccount needs get, list and watch on ${what.startsWith('pods') ? 'pods' : `inferencepools.${group}`} (${err.message})`;
    if (err.status === 404 && what.startsWith('InferencePool')) {
      // A 404 for the object names it; a 404 for the collection means the CRD is not installed.
      return /could not find the requested resource/.test(err.message)
        ? `${what}: the InferencePool CRD of group ${group} is not installed`
        : `${what}: not found`;
    }
  }
  return `${what}: ${err instanceof Error ? err.message : String(err)}`;
}

class KubeEndpointSource implements EndpointSource {
  readonly #set: EndpointSet;
  readonly #client: KubeClient;
  readonly #pods: Informer<V1Pod>;
  readonly #pool: Informer<KubernetesObject> | undefined;
  readonly #options: KubeEndpointSourceOptions;
  readonly #group: string;
  readonly #log: Logger;
  readonly #byPod = new Map<string, Endpoint[]>();
  readonly #retry: { initialMs: number; maxMs: number };
  #selection: PoolSelection | null;
  #podsListed = false;
  #closed = false;
  #retryTimer: NodeJS.Timeout | undefined;

  constructor(options: KubeEndpointSourceOptions) {
    this.#options = options;
    this.#selection = fixedSelection(options);
    this.#group = options.poolGroup ?? GIE_GROUP;
    const poolPath = options.poolName !== undefined ? poolCollectionPath(this.#group, options.namespace) : undefined;
    const { key, value } = options.servingLabel;
    if (!key) throw new Error('--serving-label: expected key=value');
    this.#retry = options.retry ?? { initialMs: 500, maxMs: 30_000 };
    this.#log = options.log.child({
      namespace: options.namespace,
      ...(options.poolName ? { pool: options.poolName, poolGroup: this.#group } : {}),
    });
    const restarts = new Counter({
      name: 'kvroute_router_endpoint_watch_restarts_total',
      help: "Restarts of the router's pod or InferencePool list/watch after an error.",
      labelNames: ['resource'],
      registers: [options.registry],
    });
    this.#set = new EndpointSet({ scrape: options.scrape, log: this.#log, registry: options.registry });
    const kc = options.kubeConfig;
    this.#client = new KubeClient(kc);

    // The serving label never changes, so it narrows the watch; the pool's selector may, so it filters here.
    const fixed = this.#selection ? Object.entries(this.#selection.selector).map(([k, v]) => `${k}=${v}`) : [];
    this.#pods = new Informer<V1Pod>(kc, this.#client, {
      name: 'pods',
      path: `/api/v1/namespaces/${encodeURIComponent(options.namespace)}/pods`,
      labelSelector: [`${key}=${value}`, ...fixed].join(','),
      log: this.#log,
      onRestart: () => restarts.inc({ resource: 'pods' }),
    });
    this.#pods.on((event, pod) => this.#observePod(event, pod));

    if (poolPath !== undefined) {
      this.#pool = new Informer<KubernetesObject>(kc, this.#client, {
        name: 'inferencepool',
        path: poolPath,
        fieldSelector: `metadata.name=${options.poolName}`,
        log: this.#log,
        onRestart: () => restarts.inc({ resource: 'inferencepools' }),
      });
      this.#pool.on((event, pool) => this.#observePool(event, pool));
    }
  }

  /** Starts the watches; resolves once the pods are listed (the pool may still be awaited: see synced). */
  async start(): Promise<void> {
    if (this.#pool) void this.#readPool(this.#retry.initialMs);
    await this.#pods.start();
    if (this.#closed) return;
    this.#podsListed = true;
    this.#log.info('pods listed', { endpoints: this.#set.size, selection: this.#selection ?? 'awaiting the InferencePool' });
  }

  /**
   * One GET of the pool before watching it, retried with backoff, so a missing pool, a missing CRD or
   * a missing permission is logged as what it is rather than as a failing watch.
   */
  async #readPool(delayMs: number): Promise<void> {
    const name = this.#options.poolName!;
    const what = `InferencePool ${this.#options.namespace}/${name}`;
    try {
      const pool = await this.#client.get<KubernetesObject>(
        `${poolCollectionPath(this.#group, this.#options.namespace)}/${encodeURIComponent(name)}`,
      );
      if (this.#closed) return;
      this.#observePool('add', pool);
    } catch (err) {
      if (this.#closed) return;
      this.#log.error(`${describeKubeError(err, what, this.#group)}; retrying`, { inMs: delayMs });
      this.#retryTimer = setTimeout(() => void this.#readPool(Math.min(delayMs * 2, this.#retry.maxMs)), delayMs);
      this.#retryTimer.unref();
      return;
    }
    // The watch retries its own failures (with backoff, counted); it only has to be started once.
    this.#pool!.start().catch((err: unknown) => this.#log.error('InferencePool watch failed to start', { err }));
  }

  #observePool(event: 'add' | 'update' | 'delete', pool: KubernetesObject): void {
    if (event === 'delete') {
      this.#log.error('InferencePool deleted: no endpoints until it is created again');
      this.#setSelection(null);
      return;
    }
    let next: PoolSelection;
    try {
      next = selectionFromPool(this.#group, pool);
    } catch (err) {
      // Keep routing with what the pool said last; the operator or the user will fix the object.
      this.#log.error(
        this.#selection
          ? 'InferencePool is invalid; keeping its previous selection'
          : 'InferencePool is invalid; no endpoints until it is fixed',
        { err },
      );
      return;
    }
    const prev = this.#selection;
    if (prev && sameSelection(prev, next)) return;
    this.#log.info('InferencePool selection', { selector: next.selector, targetPorts: next.targetPorts });
    this.#setSelection(next);
  }

  #setSelection(selection: PoolSelection | null): void {
    this.#selection = selection;
    this.#byPod.clear();
    if (selection)
      for (const pod of this.#pods.list(this.#options.namespace))
        this.#byPod.set(podKey(pod), podEndpoints(pod, selection, this.#options.servingLabel));
    this.#publish();
  }

  #observePod(event: 'add' | 'update' | 'delete', pod: V1Pod): void {
    if (!this.#selection) return;
    const key = podKey(pod);
    const next = event === 'delete' ? [] : podEndpoints(pod, this.#selection, this.#options.servingLabel);
    const prev = this.#byPod.get(key) ?? [];
    if (next.length === 0) this.#byPod.delete(key);
    else this.#byPod.set(key, next);
    if (prev.length === 0 && next.length === 0) return;
    this.#publish();
  }

  #publish(): void {
    const all: Endpoint[] = [];
    for (const eps of this.#byPod.values()) all.push(...eps);
    this.#set.replace(all);
  }

  snapshot() {
    return this.#set.snapshot();
  }

  /** True once the pods are listed and the pool's selection is known (false again while the pool is gone). */
  synced(): boolean {
    return this.#podsListed && this.#selection !== null;
  }

  requestStarted(address: string): void {
    this.#set.requestStarted(address);
  }

  requestFinished(address: string): void {
    this.#set.requestFinished(address);
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    await Promise.all([this.#pods.stop(), this.#pool?.stop()]);
    this.#client.close();
    this.#set.close();
  }
}

// The informer's own key: a pod re-created under the same name (a relist may show only the new one)
// replaces the old entry rather than leaving it behind.
function podKey(pod: V1Pod): string {
  return `${pod.metadata?.namespace}/${pod.metadata?.name}`;
}

function sameSelection(a: PoolSelection, b: PoolSelection): boolean {
  const ka = Object.keys(a.selector);
  if (ka.length !== Object.keys(b.selector).length || ka.some((k) => a.selector[k] !== b.selector[k])) return false;
  return a.targetPorts.length === b.targetPorts.length && a.targetPorts.every((p, i) => b.targetPorts[i] === p);
}

/**
 * An endpoint source over the namespace's pods, started at once: synced() turns true after the first
 * pod list (and, with a pool name, once the pool has been read). Watch failures are retried with
 * backoff and counted; a missing or forbidden pool is logged as such and retried.
 */
export function createKubeEndpointSource(options: KubeEndpointSourceOptions): EndpointSource {
  const source = new KubeEndpointSource(options);
  source.start().catch((err: unknown) => options.log.error('endpoint watch failed to start', { err }));
  return source;
}
