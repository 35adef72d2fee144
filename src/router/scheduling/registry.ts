// The plugin registry (type -> factory) and the plan a config makes of it: each plugin's parameters
// checked by its own schema, producer references resolved, the plugins llm-d adds when missing (a
// profile handler, a picker per profile, the approximate producer a prefix scorer reads), and each
// profile's filters, weighted scorers and picker. Planning creates nothing, so the config loader can
// run it to reject a bad file before anything is swapped.

import { ConfigError, parseWithSchema, type EndpointPickerConfig } from '../../api/endpoint-picker-config.ts';
import { loadBoundFilter } from './filters/load-bound.ts';
import { maxScorePicker, randomPicker, roundRobinPicker, weightedRandomPicker } from './pickers/pickers.ts';
import { approxPrefixCacheProducer } from './producers/approx-prefix.ts';
import { precisePrefixCacheProducer, precisePrefixCacheScorer } from './producers/precise-prefix.ts';
import { singleProfileHandler } from './profile-handler.ts';
import { activeRequestScorer, kvCacheUtilizationScorer, loadAwareScorer, queueScorer, runningRequestsScorer } from './scorers/load.ts';
import { loraAffinityScorer } from './scorers/lora-affinity.ts';
import { noHitLruScorer } from './scorers/no-hit-lru.ts';
import { prefixCacheScorer } from './scorers/prefix-cache.ts';
import { sessionAffinityScorer } from './scorers/session-affinity.ts';
import type { PluginFactory, PluginKind } from './types.ts';

const PLUGIN_FACTORIES: ReadonlyMap<string, PluginFactory> = new Map(
  [
    loadBoundFilter,
    precisePrefixCacheScorer,
    precisePrefixCacheProducer,
    approxPrefixCacheProducer,
    prefixCacheScorer,
    queueScorer,
    kvCacheUtilizationScorer,
    runningRequestsScorer,
    activeRequestScorer,
    loadAwareScorer,
    sessionAffinityScorer,
    loraAffinityScorer,
    noHitLruScorer,
    maxScorePicker,
    weightedRandomPicker,
    randomPicker,
    roundRobinPicker,
    singleProfileHandler,
  ].map((f) => [f.type, f]),
);

/** A plugin the scheduler will create: from the config (`at` = `plugins[i]`) or added (`at` = `(added)`). */
export interface PluginPlan {
  name: string;
  type: string;
  kind: PluginKind;
  factory: PluginFactory;
  params: unknown;
  at: string;
  /** For consumers: the producer they read. */
  producer?: string;
}

interface ProfilePlan {
  name: string;
  filters: PluginPlan[];
  scorers: Array<{ plugin: PluginPlan; weight: number }>;
  picker: PluginPlan;
}

export interface SchedulingPlan {
  plugins: PluginPlan[];
  profiles: ProfilePlan[];
  profileHandler: PluginPlan;
}

const KIND_NAMES: Record<PluginKind, string> = {
  filter: 'a filter',
  scorer: 'a scorer',
  picker: 'a picker',
  producer: 'a data producer',
  'profile-handler': 'a profile handler',
};

/**
 * Checks plugin types, parameters and references of a schema-valid config and lays out what to build.
 * Throws ConfigError listing every problem, each naming its field.
 */
export function planScheduling(config: EndpointPickerConfig, source = 'EndpointPickerConfig'): SchedulingPlan {
  const issues: string[] = [];
  const plugins: PluginPlan[] = [];
  const byName = new Map<string, PluginPlan>();
  const supported = [...PLUGIN_FACTORIES.keys()].sort().join(', ');

  config.plugins.forEach((spec, i) => {
    const factory = PLUGIN_FACTORIES.get(spec.type);
    if (!factory) {
      issues.push(`plugins[${i}].type: unknown plugin type "${spec.type}"; supported types: ${supported}`);
      return;
    }
    try {
      const params = parseWithSchema(factory.parameters, spec.parameters, source, `plugins[${i}].parameters`);
      const plan: PluginPlan = { name: spec.name, type: spec.type, kind: factory.kind, factory, params, at: `plugins[${i}]` };
      plugins.push(plan);
      byName.set(spec.name, plan);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      issues.push(...err.issues);
    }
  });

  const uniqueName = (base: string): string => {
    let name = base;
    for (let n = 2; byName.has(name); n++) name = `${base}-${n}`;
    return name;
  };
  const addPlugin = (type: string): PluginPlan => {
    const factory = PLUGIN_FACTORIES.get(type)!;
    const plan: PluginPlan = {
      name: uniqueName(type),
      type,
      kind: factory.kind,
      factory,
      params: factory.parameters.parse({}),
      at: '(added)',
    };
    plugins.push(plan);
    byName.set(plan.name, plan);
    return plan;
  };

  // Producer references: explicit, else the only prefix producer, else the approximate one (added when missing).
  for (const plan of [...plugins]) {
    const ref = plan.factory.producerRef;
    if (!ref) continue;
    const written = ref(plan.params);
    const field = `${plan.at}.parameters.prefixMatchInfoProducerName`;
    if (written !== undefined) {
      const target = byName.get(written);
      if (!target) issues.push(`${field}: no plugin named "${written}"`);
      else if (target.factory.produces !== 'prefix-match')
        issues.push(
          `${field}: "${written}" is ${KIND_NAMES[target.kind]} (${target.type}), not a prefix producer (approx-prefix-cache-producer or precise-prefix-cache-producer)`,
        );
      else plan.producer = written;
      continue;
    }
    const producers = plugins.filter((p) => p.factory.produces === 'prefix-match');
    const approx = byName.get('approx-prefix-cache-producer');
    if (producers.length === 1) plan.producer = producers[0]!.name;
    else if (approx?.type === 'approx-prefix-cache-producer') plan.producer = approx.name;
    else if (producers.length === 0) plan.producer = addPlugin('approx-prefix-cache-producer').name;
    else
      issues.push(`${field}: several prefix producers are configured (${producers.map((p) => p.name).join(', ')}): name the one to read`);
  }

  const handlers = plugins.filter((p) => p.kind === 'profile-handler');
  if (handlers.length > 1)
    issues.push(`${handlers[1]!.at}.type: a second profile handler ("${handlers[1]!.name}"; also "${handlers[0]!.name}"): configure one`);
  const profileHandler = handlers[0] ?? addPlugin('single-profile-handler');
  if (profileHandler.type === 'single-profile-handler' && config.schedulingProfiles.length !== 1) {
    issues.push(
      `schedulingProfiles: single-profile-handler runs exactly one profile, got ${config.schedulingProfiles.length} (${config.schedulingProfiles.map((p) => p.name).join(', ')})`,
    );
  }

  let addedPicker: PluginPlan | undefined;
  const profiles: ProfilePlan[] = [];
  config.schedulingProfiles.forEach((profile, i) => {
    const filters: PluginPlan[] = [];
    const scorers: Array<{ plugin: PluginPlan; weight: number }> = [];
    let picker: PluginPlan | undefined;
    profile.plugins.forEach((ref, j) => {
      const field = `schedulingProfiles[${i}].plugins[${j}].pluginRef`;
      const plan = byName.get(ref.pluginRef);
      // Unknown names are the schema's error; a plugin with a bad type or parameters has its own.
      if (!plan) return;
      switch (plan.kind) {
        case 'filter':
          filters.push(plan);
          break;
        case 'scorer':
          scorers.push({ plugin: plan, weight: ref.weight });
          break;
        case 'picker':
          if (picker) issues.push(`${field}: a second picker ("${plan.name}"; the profile already has "${picker.name}")`);
          else picker = plan;
          break;
        default:
          issues.push(
            `${field}: "${plan.name}" is ${KIND_NAMES[plan.kind]} (${plan.type}), not a filter, scorer or picker; list it under plugins only`,
          );
      }
    });
    if (!picker) picker = addedPicker ??= addPlugin('max-score-picker');
    profiles.push({ name: profile.name, filters, scorers, picker });
  });

  if (issues.length > 0) throw new ConfigError(source, issues);
  return { plugins, profiles, profileHandler };
}
