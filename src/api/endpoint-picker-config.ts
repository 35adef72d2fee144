// The router's config file (`kvroute router --config-file`, the router.yaml the operator renders):
// llm-d's EndpointPickerConfig (plugins + scheduling profiles with weights), plus kvroute's `models`.
// The one source of its type; parse errors name the field path. Plugin parameters are checked by each
// plugin's own schema when the scheduler is built (src/router/scheduling), with the same error format.

import YAML from 'yaml';
import { z } from 'zod';
import { parseDuration } from '../common/duration.ts';

export const ENDPOINT_PICKER_API_VERSION = 'llm-d.ai/v1alpha1';
/** GIE's group before the move to llm-d: still accepted, with a warning from the loader. */
export const DEPRECATED_ENDPOINT_PICKER_API_VERSION = 'inference.networking.x-k8s.io/v1alpha1';

/**
 * llm-d keys kvroute reads but does not act on (its data layer, flow control and parser are built in):
 * accepted so an llm-d file loads, and named in a warning by the loader.
 */
export const IGNORED_LLM_D_KEYS = ['dataLayer', 'flowControl', 'parser'] as const;

/** A config that cannot be used; the message names the field path, one line per problem. */
export class ConfigError extends Error {
  /** `path: problem`, one per issue. */
  readonly issues: string[];
  constructor(source: string, issues: string[]) {
    super(issues.length === 1 ? `${source}: ${issues[0]}` : `${source}:\n${issues.map((i) => `  ${i}`).join('\n')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/** `plugins[2].parameters.loadBound` from a zod path under an optional prefix. */
function formatPath(path: readonly PropertyKey[], prefix = ''): string {
  let out = prefix;
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out === '' ? String(part) : `.${String(part)}`;
  return out;
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  return String(value);
}

/**
 * The default wording of a zod issue, for parses of config text: `expected number >= 1, got 0.5`.
 * Messages a schema sets itself take precedence.
 */
function issueMessage(issue: z.core.$ZodRawIssue): string | undefined {
  const got = 'input' in issue && issue.input !== undefined ? `, got ${describeValue(issue.input)}` : '';
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return `required (expected ${issue.expected === 'int' ? 'an integer' : issue.expected})`;
      return `expected ${issue.expected === 'int' ? 'an integer' : issue.expected}${got}`;
    case 'too_small': {
      const op = issue.inclusive ? '>=' : '>';
      if (issue.origin === 'array') return `expected at least ${issue.minimum} item${Number(issue.minimum) === 1 ? '' : 's'}`;
      if (issue.origin === 'string')
        return Number(issue.minimum) === 1 ? 'expected a non-empty string' : `expected at least ${issue.minimum} characters`;
      return `expected ${issue.origin} ${op} ${issue.minimum}${got}`;
    }
    case 'too_big': {
      const op = issue.inclusive ? '<=' : '<';
      if (issue.origin === 'array') return `expected at most ${issue.maximum} items`;
      if (issue.origin === 'string') return `expected at most ${issue.maximum} characters`;
      return `expected ${issue.origin} ${op} ${issue.maximum}${got}`;
    }
    case 'invalid_value':
      return `expected ${issue.values.length === 1 ? JSON.stringify(issue.values[0]) : `one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`}${got}`;
    case 'unrecognized_keys':
      return 'unknown field';
    default:
      return undefined;
  }
}

/** One line per issue: `path: message`, with unknown keys reported at their own path. */
function formatIssues(error: z.ZodError, prefix = ''): string[] {
  return error.issues.flatMap((i) => {
    if (i.code === 'unrecognized_keys') return i.keys.map((k) => `${formatPath([...i.path, k], prefix)}: unknown field`);
    return [`${formatPath(i.path, prefix) || '(root)'}: ${i.message}`];
  });
}

/**
 * Parses `value` with `schema`, throwing ConfigError whose lines name each field under `prefix`
 * (e.g. `plugins[2].parameters`). Used for the file and for each plugin's parameters.
 */
export function parseWithSchema<S extends z.ZodType>(schema: S, value: unknown, source: string, prefix = ''): z.output<S> {
  const result = schema.safeParse(value, { error: issueMessage });
  if (!result.success) throw new ConfigError(source, formatIssues(result.error, prefix));
  return result.data;
}

const NAME = z.string().min(1);

const Duration = z.string().superRefine((text, ctx) => {
  try {
    parseDuration(text);
  } catch {
    ctx.addIssue({ code: 'custom', message: `expected a duration such as "200ms", "2s" or "1m30s", got ${JSON.stringify(text)}` });
  }
});

export const PluginSpec = z
  .strictObject({
    /** Defaults to the type; profiles refer to plugins by name. */
    name: NAME.optional(),
    type: NAME,
    /** Checked against the plugin type's own schema when the scheduler is built. */
    parameters: z.record(z.string(), z.unknown()).nullable().optional(),
  })
  .transform((p) => ({ name: p.name ?? p.type, type: p.type, parameters: p.parameters ?? {} }));
export type PluginSpec = z.output<typeof PluginSpec>;

export const ProfilePluginRef = z.strictObject({
  pluginRef: NAME,
  /** Multiplies the scorer's score (0..1) in the profile's total; ignored for filters and pickers. */
  weight: z.number().min(0).default(1),
});

const SchedulingProfile = z.strictObject({
  name: NAME,
  plugins: z.array(ProfilePluginRef).default([]),
});

const SaturationDetectorConfig = z.strictObject({
  /** An endpoint with more waiting requests than this is saturated. */
  queueDepthThreshold: z.int().min(0).default(5),
  /** An endpoint whose KV cache is fuller than this (0..1) is saturated. */
  kvCacheUtilThreshold: z.number().min(0).max(1).default(0.8),
  /** Metrics older than this make an endpoint count as saturated (Go duration, e.g. "200ms"). */
  metricsStalenessThreshold: Duration.default('200ms'),
});

const ModelTarget = z.strictObject({
  name: NAME,
  /** Relative weight among the model's targets; all targets weighted or none. */
  weight: z.int().min(0).optional(),
});

/** kvroute's extension: an InferenceModel routed through this pool (the operator renders them). */
const RoutedModelSpec = z
  .strictObject({
    modelName: NAME,
    criticality: z.enum(['Critical', 'Standard', 'Sheddable']).default('Standard'),
    /** GIE priority (higher first, below 0 sheddable); derived from criticality when absent. */
    priority: z.int().optional(),
    targetModels: z.array(ModelTarget).default([]),
  })
  .superRefine((m, ctx) => {
    const weighted = m.targetModels.filter((t) => t.weight !== undefined).length;
    if (weighted > 0 && weighted < m.targetModels.length) {
      ctx.addIssue({ code: 'custom', path: ['targetModels'], message: 'expected a weight on every target model or on none' });
    } else if (weighted > 0 && m.targetModels.every((t) => t.weight === 0)) {
      ctx.addIssue({ code: 'custom', path: ['targetModels'], message: 'expected at least one target model with a weight above 0' });
    }
  });

export const EndpointPickerConfig = z
  .strictObject({
    apiVersion: z.enum([ENDPOINT_PICKER_API_VERSION, DEPRECATED_ENDPOINT_PICKER_API_VERSION]),
    kind: z.literal('EndpointPickerConfig'),
    plugins: z.array(PluginSpec).default([]),
    schedulingProfiles: z.array(SchedulingProfile).min(1, 'expected at least one scheduling profile'),
    featureGates: z.array(NAME).default([]),
    saturationDetector: SaturationDetectorConfig.prefault({}),
    models: z.array(RoutedModelSpec).default([]),
    dataLayer: z.unknown().optional(),
    flowControl: z.unknown().optional(),
    parser: z.unknown().optional(),
  })
  .superRefine((c, ctx) => {
    const pluginAt = new Map<string, number>();
    c.plugins.forEach((p, i) => {
      const first = pluginAt.get(p.name);
      if (first === undefined) pluginAt.set(p.name, i);
      else
        ctx.addIssue({
          code: 'custom',
          path: ['plugins', i, 'name'],
          message: `duplicate plugin name "${p.name}" (also plugins[${first}]); give one of them a distinct name`,
        });
    });
    const profileAt = new Map<string, number>();
    c.schedulingProfiles.forEach((profile, i) => {
      const first = profileAt.get(profile.name);
      if (first === undefined) profileAt.set(profile.name, i);
      else
        ctx.addIssue({
          code: 'custom',
          path: ['schedulingProfiles', i, 'name'],
          message: `duplicate profile name "${profile.name}" (also schedulingProfiles[${first}])`,
        });
      const refs = new Set<string>();
      profile.plugins.forEach((ref, j) => {
        if (!pluginAt.has(ref.pluginRef)) {
          const known = [...pluginAt.keys()];
          ctx.addIssue({
            code: 'custom',
            path: ['schedulingProfiles', i, 'plugins', j, 'pluginRef'],
            message: `no plugin named "${ref.pluginRef}"${known.length > 0 ? ` (plugins: ${known.join(', ')})` : ' (the plugins list is empty)'}`,
          });
        } else if (refs.has(ref.pluginRef)) {
          ctx.addIssue({
            code: 'custom',
            path: ['schedulingProfiles', i, 'plugins', j, 'pluginRef'],
            message: `plugin "${ref.pluginRef}" is listed twice in this profile`,
          });
        }
        refs.add(ref.pluginRef);
      });
    });
    const modelAt = new Map<string, number>();
    c.models.forEach((m, i) => {
      const first = modelAt.get(m.modelName);
      if (first === undefined) modelAt.set(m.modelName, i);
      else
        ctx.addIssue({
          code: 'custom',
          path: ['models', i, 'modelName'],
          message: `duplicate model "${m.modelName}" (also models[${first}])`,
        });
    });
  });
export type EndpointPickerConfig = z.output<typeof EndpointPickerConfig>;
/** The config as written: every field with a default may be left out. */
export type EndpointPickerConfigInput = z.input<typeof EndpointPickerConfig>;

/** Validates an already-parsed config object (e.g. one built in code); throws ConfigError. */
export function validateEndpointPickerConfig(value: unknown, source = '(config)'): EndpointPickerConfig {
  return parseWithSchema(EndpointPickerConfig, value, source);
}

/**
 * Parses YAML (or JSON) config text; `source` names it in errors (a file path, `--config-text`).
 * Throws ConfigError naming the line for bad YAML and the field path for a bad config. Plugin types and
 * parameters are checked later, by the scheduler's registry.
 */
export function parseEndpointPickerConfig(text: string, source: string): EndpointPickerConfig {
  const doc = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      source,
      doc.errors.map((e) => {
        const what = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
        const at = e.linePos?.[0];
        return `${at ? `line ${at.line}, column ${at.col}: ` : ''}not valid YAML: ${what}`;
      }),
    );
  }
  const value: unknown = doc.toJS({ maxAliasCount: 100 });
  if (value === null || value === undefined) throw new ConfigError(source, ['(root): empty file, expected an EndpointPickerConfig']);
  if (typeof value !== 'object' || Array.isArray(value))
    throw new ConfigError(source, [
      `(root): expected a mapping (apiVersion, kind, plugins, schedulingProfiles), got ${describeValue(value)}`,
    ]);
  return validateEndpointPickerConfig(value, source);
}

/** Address of the indexer sidecar the operator runs beside the router. */
export const DEFAULT_INDEXER_ADDRESS = '127.0.0.1:9004';

/**
 * How long the default profile waits for the indexer before the precise scorer abstains. A miss
 * routes on load alone and usually costs a cold prefill (about 2.5 s more to first token for a
 * 4,000-token prompt on the reference numbers), while the answer is normally a few ms but takes
 * tens of ms when the indexer tokenizes a long uncached chat prompt (ADR 0005) or shares its cores:
 * in the demo (pods, indexer, router and gateway on two busy cores) a 50 ms deadline was missed by
 * 10-15% of requests. 200 ms keeps fail-open (a hung indexer costs each request at most this) while
 * no longer abstaining on a slow answer.
 */
export const INDEXER_TIMEOUT_MS = 200;

/**
 * A request is placing a new prefix (no-hit-lru-scorer's "cold") unless some pod holds at least this
 * fraction of its blocks. A shared preamble (64 of a 7,200-token prompt in the shared-prefix run; the
 * Mooncake conversation trace's first block) stays far below it, while a request whose pod holds a
 * quarter of the prompt or more is left to the prefix scorer: moving it elsewhere would recompute
 * that quarter to spread load the load scorers already weigh.
 */
export const WARM_MATCH_FRACTION = 0.25;

/**
 * kvroute's default: behind the load bound (filters/load-bound.ts, c = 1.25, floor 3 requests), the
 * indexer's match (precise-prefix-cache-producer) read by the prefix scorer weighted 3 and by the
 * no-hit-lru scorer weighted 1, and three load scorers weighted 1 each: the engine's queue, its KV
 * utilisation, and this router's requests in flight. The first two stay flat until an engine
 * saturates (nothing waits below its batch limit; usage counts only running requests' blocks), so
 * without the third a match of a block or two that every prompt shares (a platform preamble, the
 * Mooncake conversation trace's first block) decided where every new prefix went: all onto the
 * first warm pod (51.6% of the conversation trace's requests on one of 8 pods). The in-flight count
 * is live, so such near-ties go to the idle pods; but among several idle pods the shared blocks still
 * broke the tie towards the warm ones, and a pod that never took a request never got one (3 of 4 pods
 * used in the 150-group shared-prefix run, 4 of 8 on the conversation trace). The no-hit-lru scorer
 * settles those ties: a request no pod holds a quarter of (WARM_MATCH_FRACTION) goes to the pod that
 * took such a request least recently, so new prefixes rotate over the pool. A pod holding a third
 * more of the prompt than the others still keeps a warm request (3 x 1/3 = the in-flight scorer's
 * whole range).
 */
export const DEFAULT_ENDPOINT_PICKER_CONFIG: EndpointPickerConfig = validateEndpointPickerConfig(
  {
    apiVersion: ENDPOINT_PICKER_API_VERSION,
    kind: 'EndpointPickerConfig',
    plugins: [
      { type: 'load-bound-filter' },
      { type: 'precise-prefix-cache-producer', parameters: { indexerAddress: DEFAULT_INDEXER_ADDRESS, timeoutMs: INDEXER_TIMEOUT_MS } },
      { type: 'prefix-cache-scorer', parameters: { prefixMatchInfoProducerName: 'precise-prefix-cache-producer' } },
      {
        type: 'no-hit-lru-scorer',
        parameters: { prefixMatchInfoProducerName: 'precise-prefix-cache-producer', warmMatchFraction: WARM_MATCH_FRACTION },
      },
      { type: 'queue-scorer' },
      { type: 'kv-cache-utilization-scorer' },
      { type: 'running-requests-scorer' },
      { type: 'max-score-picker' },
    ],
    schedulingProfiles: [
      {
        name: 'default',
        plugins: [
          { pluginRef: 'load-bound-filter' },
          { pluginRef: 'prefix-cache-scorer', weight: 3 },
          { pluginRef: 'no-hit-lru-scorer', weight: 1 },
          { pluginRef: 'queue-scorer', weight: 1 },
          { pluginRef: 'kv-cache-utilization-scorer', weight: 1 },
          { pluginRef: 'running-requests-scorer', weight: 1 },
          { pluginRef: 'max-score-picker' },
        ],
      },
    ],
  } satisfies EndpointPickerConfigInput,
  'DEFAULT_ENDPOINT_PICKER_CONFIG',
);

export type StrategyName = 'random' | 'round-robin' | 'load' | 'approx-prefix' | 'precise-prefix' | 'kvroute';

function strategy(
  plugins: Array<{ type: string; parameters?: Record<string, unknown>; weight?: number }>,
  name: StrategyName,
): EndpointPickerConfig {
  return validateEndpointPickerConfig(
    {
      apiVersion: ENDPOINT_PICKER_API_VERSION,
      kind: 'EndpointPickerConfig',
      plugins: plugins.map(({ type, parameters }) => (parameters ? { type, parameters } : { type })),
      schedulingProfiles: [
        { name: 'default', plugins: plugins.filter((p) => p.weight !== undefined).map((p) => ({ pluginRef: p.type, weight: p.weight })) },
      ],
    },
    `STRATEGY_CONFIGS.${name}`,
  );
}

/**
 * Named strategies the routing benchmark compares, from least to most informed: random, round-robin,
 * load only, llm-d's approximate prefix baseline (optimized-baseline weights), the precise prefix
 * alone (no load bound), and kvroute's default.
 */
export const STRATEGY_CONFIGS: Record<StrategyName, EndpointPickerConfig> = {
  random: strategy([{ type: 'random-picker', weight: 1 }], 'random'),
  'round-robin': strategy([{ type: 'round-robin-picker', weight: 1 }], 'round-robin'),
  load: strategy(
    [
      { type: 'queue-scorer', weight: 1 },
      { type: 'kv-cache-utilization-scorer', weight: 1 },
      { type: 'running-requests-scorer', weight: 1 },
      { type: 'max-score-picker', weight: 1 },
    ],
    'load',
  ),
  'approx-prefix': strategy(
    [
      { type: 'approx-prefix-cache-producer' },
      { type: 'prefix-cache-scorer', weight: 3 },
      { type: 'queue-scorer', weight: 2 },
      { type: 'kv-cache-utilization-scorer', weight: 2 },
      { type: 'max-score-picker', weight: 1 },
    ],
    'approx-prefix',
  ),
  'precise-prefix': strategy(
    [
      {
        type: 'precise-prefix-cache-scorer',
        parameters: { indexerAddress: DEFAULT_INDEXER_ADDRESS, timeoutMs: INDEXER_TIMEOUT_MS },
        weight: 1,
      },
      { type: 'max-score-picker', weight: 1 },
    ],
    'precise-prefix',
  ),
  kvroute: DEFAULT_ENDPOINT_PICKER_CONFIG,
};
