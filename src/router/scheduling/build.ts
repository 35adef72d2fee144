// Builds the router's Scheduler from an EndpointPickerConfig: plans the plugins (registry.ts), creates
// them with the scheduler's dependencies (logger, metrics registry, random source, clock, indexer
// clients), and for each request runs the chosen profile's prepare step (the slow lookups), then, in
// one synchronous step, re-reads the candidates (PickTime), filters, scores, picks, reserves the
// pick and runs the plugins' post-pick hooks. A config reload builds a new scheduler and closes the old one.

import type { Registry } from 'prom-client';
import type { EndpointPickerConfig } from '../../api/endpoint-picker-config.ts';
import type { Logger } from '../../common/log.ts';
import { createIndexerClient, type PrefixScorer } from '../../indexer/public.ts';
import {
  SchedulingError,
  type EndpointState,
  type InferenceRequest,
  type PickTime,
  type Scheduler,
  type SchedulingResult,
} from '../types.ts';
import { schedulerMetrics, type SchedulerMetrics } from './metrics.ts';
import { observePlugin, prepareProfile, runProfile, type RunnableProfile, type RunnerContext } from './profile.ts';
import { planScheduling, type PluginPlan } from './registry.ts';
import type { CycleState, PickOutcome, Plugin, PluginContext, PrefixMatch, PrefixMatchInfo, Producer, ProfileHandler } from './types.ts';

export interface SchedulerDeps {
  log: Logger;
  registry: Registry;
  /**
   * The indexer for an address (the precise prefix plugins' indexerAddress). Default: a gRPC client
   * (createIndexerClient) per address, closed with the scheduler. What this returns is the caller's to close.
   */
  indexer?: (address: string) => PrefixScorer;
  /** Wins over every plugin's indexerAddress (the --indexer flag). */
  indexerAddressOverride?: string;
  random?: () => number;
  now?: () => number;
}

export type ClosableScheduler = Scheduler & { close(): void };

class Cycle implements CycleState {
  readonly request: InferenceRequest;
  readonly candidates: readonly EndpointState[];
  readonly now: number;
  readonly data = new Map<string, unknown>();
  readonly responseHeaders: Record<string, string> = {};
  precisePrefix?: PrefixMatchInfo;
  prefix?: PrefixMatchInfo;
  /** Producers that ran, in order, for the post-pick hooks. */
  readonly ran: Producer[] = [];
  readonly #producers: ReadonlyMap<string, Producer>;
  readonly #outputs = new Map<string, Promise<unknown>>();
  readonly #ctx: RunnerContext;

  constructor(
    request: InferenceRequest,
    candidates: readonly EndpointState[],
    now: number,
    producers: ReadonlyMap<string, Producer>,
    ctx: RunnerContext,
  ) {
    this.request = request;
    this.candidates = candidates;
    this.now = now;
    this.#producers = producers;
    this.#ctx = ctx;
  }

  produce<T>(name: string): Promise<T> {
    let output = this.#outputs.get(name);
    if (!output) {
      const producer = this.#producers.get(name);
      if (!producer) return Promise.reject(new Error(`no producer named "${name}"`));
      this.ran.push(producer);
      const started = performance.now();
      output = Promise.resolve()
        .then(() => producer.produce(this))
        .catch((err: unknown): PrefixMatch => {
          this.#ctx.metrics.pluginErrors.inc({ plugin_type: producer.type, plugin_name: producer.name });
          this.#ctx.log.limited(`producer-error:${producer.name}`, 'error', 'producer failed: its consumers abstain', {
            plugin: producer.name,
            err: err as Error,
          });
          return { kind: 'failed', reason: (err as Error).message };
        })
        .finally(() => observePlugin(this.#ctx, producer, started));
      this.#outputs.set(name, output);
    }
    return output as Promise<T>;
  }
}

/**
 * The Scheduler for `config`. Throws ConfigError (naming the field) for unknown plugin types, bad
 * parameters or references, before creating anything.
 */
export function buildScheduler(config: EndpointPickerConfig, deps: SchedulerDeps): ClosableScheduler {
  const plan = planScheduling(config);
  const metrics: SchedulerMetrics = schedulerMetrics(deps.registry);
  const random = deps.random ?? Math.random;
  const now = deps.now ?? Date.now;
  const log = deps.log.child({ component: 'scheduler' });

  // Indexer clients: one per (address, deadline), shared by the plugins that ask for it.
  const owned: Array<{ close(): void }> = [];
  const indexers = new Map<string, PrefixScorer>();
  const indexerFor = (address: string, timeoutMs: number): PrefixScorer => {
    const key = deps.indexer ? address : `${address}|${timeoutMs}`;
    let client = indexers.get(key);
    if (!client) {
      if (deps.indexer) {
        client = deps.indexer(address);
      } else {
        const grpcClient = createIndexerClient(address, { deadlineMs: timeoutMs });
        owned.push(grpcClient);
        client = grpcClient;
      }
      indexers.set(key, client);
    }
    return client;
  };

  const instances = new Map<string, Plugin>();
  const close = (): void => {
    for (const plugin of instances.values()) {
      try {
        plugin.close?.();
      } catch (err) {
        log.warn('plugin close failed', { plugin: plugin.name, err: err as Error });
      }
    }
    for (const client of owned.splice(0)) client.close();
  };
  const create = (p: PluginPlan): Plugin => {
    const ctx: PluginContext = {
      log: log.child({ plugin: p.name }),
      metrics,
      random,
      now,
      indexerFor,
      indexerAddressOverride: deps.indexerAddressOverride,
      producer: p.producer,
    };
    return p.factory.create(p.name, p.params, ctx);
  };
  try {
    for (const p of plan.plugins) instances.set(p.name, create(p));
  } catch (err) {
    close();
    throw err;
  }

  const producers = new Map<string, Producer>();
  for (const plugin of instances.values()) if (plugin.kind === 'producer') producers.set(plugin.name, plugin);
  const profiles = new Map<string, RunnableProfile & { plugins: Plugin[] }>();
  for (const p of plan.profiles) {
    const filters = p.filters.flatMap((f) => {
      const filter = instances.get(f.name);
      return filter?.kind === 'filter' ? [filter] : [];
    });
    const scorers = p.scorers.flatMap(({ plugin, weight }) => {
      const scorer = instances.get(plugin.name);
      return scorer?.kind === 'scorer' ? [{ scorer, weight }] : [];
    });
    const picker = instances.get(p.picker.name);
    if (picker?.kind !== 'picker') throw new Error(`bug: profile ${p.name} has no picker instance`);
    profiles.set(p.name, {
      name: p.name,
      filters,
      scorers,
      picker,
      plugins: [...new Set<Plugin>([...filters, ...scorers.map((s) => s.scorer), picker])],
    });
  }
  const handler = instances.get(plan.profileHandler.name) as ProfileHandler;
  const profileNames = [...profiles.keys()];
  const runner: RunnerContext = { metrics, log, random };

  log.info('scheduler built', {
    profiles: plan.profiles.map((p) => ({
      name: p.name,
      filters: p.filters.map((f) => f.name),
      scorers: p.scorers.map((s) => `${s.plugin.name}*${s.weight}`),
      picker: p.picker.name,
    })),
  });

  return {
    async schedule(request: InferenceRequest, candidates: EndpointState[], pickTime?: PickTime): Promise<SchedulingResult> {
      if (candidates.length === 0) throw new SchedulingError(503, 'rejected-no-endpoints', 'no candidate endpoints for the request');
      const cycle = new Cycle(request, candidates, now(), producers, runner);
      const chosen = handler.selectProfile(cycle, profileNames);
      const profile = profiles.get(chosen) ?? profiles.get(profileNames[0]!)!;
      const prepared = await prepareProfile(profile, cycle, runner);

      // From here on nothing awaits: the load read, the pick and its reservation happen in one tick,
      // so a request scheduled at the same time sees this one counted on its endpoint.
      const current = pickTime ? pickTime.refresh() : candidates;
      if (current.length === 0) {
        throw new SchedulingError(503, 'rejected-no-endpoints', 'every candidate endpoint left the pool while the request was scheduled');
      }
      const { targets, scores } = runProfile(profile, cycle, current, runner, prepared);
      pickTime?.reserve(targets[0]!.endpoint.address);
      const outcome: PickOutcome = { targets, profile: profile.name };
      for (const plugin of [...profile.plugins, ...cycle.ran]) {
        if (!plugin.postPick) continue;
        try {
          plugin.postPick(cycle, outcome);
        } catch (err) {
          metrics.pluginErrors.inc({ plugin_type: plugin.type, plugin_name: plugin.name });
          log.limited(`post-pick-error:${plugin.name}`, 'error', 'post-pick hook failed', { plugin: plugin.name, err: err as Error });
        }
      }
      const result: SchedulingResult = { targets: targets.map((t) => t.endpoint), profile: profile.name, scores };
      const first = targets[0]!;
      if (cycle.precisePrefix) {
        result.predictedPrefix = {
          matchedBlocks: cycle.precisePrefix.matched.get(first.endpoint.address) ?? 0,
          totalBlocks: cycle.precisePrefix.totalBlocks,
        };
      }
      if (Object.keys(cycle.responseHeaders).length > 0) result.responseHeaders = cycle.responseHeaders;
      return result;
    },
    close,
  };
}
