// The scheduling framework's contracts: the plugin kinds a profile runs (filters, scorers, a picker),
// the data producers scorers read, the per-request cycle state they share, and the factory each plugin
// file exports (its type, kind and parameter schema). Plugins are named in the EndpointPickerConfig.

import type { z } from 'zod';
import type { Logger } from '../../common/log.ts';
import type { PrefixScorer } from '../../indexer/public.ts';
import type { EndpointState, InferenceRequest } from '../types.ts';
import type { SchedulerMetrics } from './metrics.ts';

export type PluginKind = 'filter' | 'scorer' | 'picker' | 'producer' | 'profile-handler';

/**
 * What one request's scheduling shares between plugins. Producers run at most once per cycle, on the
 * first plugin that asks for their output.
 */
export interface CycleState {
  readonly request: InferenceRequest;
  /**
   * Every candidate the scheduler was given, as they were when scheduling began: what prepare steps
   * and producers look up. Filters, scorers and the picker get the same endpoints re-read at pick
   * time (live load), narrowed by the filters before them.
   */
  readonly candidates: readonly EndpointState[];
  /** Wall-clock ms at the start of the cycle. */
  readonly now: number;
  /** The output of the producer plugin named `name` (run on first use, then memoized). */
  produce<T>(name: string): Promise<T>;
  /** Per-plugin scratch, keyed by plugin name (what a filter removed, the blocks a producer hashed). */
  readonly data: Map<string, unknown>;
  /** The prefix match the precise prefix plugins found, over all candidates; set when one ran. */
  precisePrefix?: PrefixMatchInfo;
  /** The best prefix match any prefix plugin found (precise or approximate), for the load bound's accounting. */
  prefix?: PrefixMatchInfo;
  /** Headers to add to the response (session affinity). */
  readonly responseHeaders: Record<string, string>;
}

/** Prefix blocks each candidate holds for the request, from the indexer or the approximate index. */
export interface PrefixMatchInfo {
  /** Blocks in the request (the denominator of a prefix score). */
  totalBlocks: number;
  /** Endpoint address -> consecutive blocks from the start it holds (absent: none). */
  matched: Map<string, number>;
}

/**
 * A prefix producer's answer: the matches, or why there are none. `failed`: the source could not be
 * asked (indexer down or slow), so prefix scorers abstain; `no-input`: the request has no prompt.
 */
export type PrefixMatch = { kind: 'matched'; info: PrefixMatchInfo } | { kind: 'failed'; reason: string } | { kind: 'no-input' };

/** What the picker chose, passed to post-pick hooks (index updates, response headers). */
export interface PickOutcome {
  targets: readonly EndpointState[];
  profile: string;
}

interface PluginBase {
  readonly type: string;
  readonly name: string;
  /**
   * The plugin's waiting work for a request (an indexer call, a producer's output), run for every
   * plugin of the profile, concurrently, before the pick; keep what it finds in cycle.data. The
   * filters, scorers and picker themselves are synchronous, so the load they read is still the load
   * when the pick is counted in flight.
   */
  prepare?(cycle: CycleState): Promise<void> | void;
  /** Runs after every pick of a cycle this plugin took part in (or whose output was used). */
  postPick?(cycle: CycleState, outcome: PickOutcome): void;
  /** Releases what the plugin holds (clients, indexes). */
  close?(): void;
}

export interface Filter extends PluginBase {
  readonly kind: 'filter';
  /**
   * A hard filter's empty result fails the request; a soft one (the default) that would leave no
   * endpoint is skipped and counted, since routing somewhere beats refusing.
   */
  readonly hard?: boolean;
  filter(cycle: CycleState, endpoints: readonly EndpointState[]): EndpointState[];
}

/** One score per endpoint (same order), 0..1; null: the scorer abstains for that endpoint (contributes 0, counted). */
export type ScoreVector = ReadonlyArray<number | null>;

export interface Scorer extends PluginBase {
  readonly kind: 'scorer';
  /**
   * null: the scorer does not apply to this request (no LoRA, no prompt): contributes 0, not counted.
   * Synchronous: what must be waited for belongs in prepare.
   */
  score(cycle: CycleState, endpoints: readonly EndpointState[]): ScoreVector | null;
}

export interface ScoredEndpoint {
  state: EndpointState;
  /** Weighted total over the profile's scorers. */
  score: number;
}

export interface Picker extends PluginBase {
  readonly kind: 'picker';
  /** Endpoints in order of preference, at least one when `scored` is not empty. */
  pick(cycle: CycleState, scored: readonly ScoredEndpoint[]): EndpointState[];
}

export interface Producer extends PluginBase {
  readonly kind: 'producer';
  /** What this producer's output is, so consumers can check a reference at build time. */
  readonly produces: 'prefix-match';
  produce(cycle: CycleState): unknown;
}

export interface ProfileHandler extends PluginBase {
  readonly kind: 'profile-handler';
  /** The profile to run for this request, by name. */
  selectProfile(cycle: CycleState, profiles: readonly string[]): string;
}

export type Plugin = Filter | Scorer | Picker | Producer | ProfileHandler;

/** What plugins get from the scheduler that builds them. */
export interface PluginContext {
  log: Logger;
  metrics: SchedulerMetrics;
  random: () => number;
  now: () => number;
  /** The indexer client for an address (shared per address and deadline; closed with the scheduler). */
  indexerFor(address: string, timeoutMs: number): PrefixScorer;
  /** deps.indexerAddressOverride (the --indexer flag), which wins over a plugin's indexerAddress. */
  indexerAddressOverride?: string;
  /** The producer a consumer reads (resolved at build from its prefixMatchInfoProducerName). */
  producer?: string;
}

/** What each plugin file exports: the type name, the kind, the parameter schema and a constructor. */
export interface PluginFactory<S extends z.ZodType = z.ZodType> {
  readonly type: string;
  readonly kind: PluginKind;
  /** Parameters as written under `parameters:`; errors name `plugins[i].parameters.<field>`. */
  readonly parameters: S;
  /** Set for what the plugin produces (producers only). */
  readonly produces?: 'prefix-match';
  /** For consumers of a producer: the name written in the parameters, if any (resolved at build). */
  readonly producerRef?: (params: z.output<S>) => string | undefined;
  create(name: string, params: z.output<S>, ctx: PluginContext): Plugin;
}

/** Declares a factory with its parameter type inferred from the schema. */
export function definePlugin<S extends z.ZodType>(factory: PluginFactory<S>): PluginFactory {
  return factory as unknown as PluginFactory;
}
