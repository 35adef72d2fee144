import { describe, expect, it } from '@jest/globals';
import {
  ConfigError,
  DEFAULT_ENDPOINT_PICKER_CONFIG,
  STRATEGY_CONFIGS,
  parseEndpointPickerConfig,
  parseWithSchema,
  validateEndpointPickerConfig,
} from './endpoint-picker-config.ts';
import { z } from 'zod';

// llm-d's test/perf/config/router-configs/optimized-baseline.yaml, as users write it.
const OPTIMIZED_BASELINE = `
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: approx-prefix-cache-producer
  parameters:
    maxPrefixTokensToMatch: 100000
- type: prefix-cache-scorer
- type: no-hit-lru-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: 2
  - pluginRef: kv-cache-utilization-scorer
    weight: 2
  - pluginRef: prefix-cache-scorer
    weight: 3
  - pluginRef: no-hit-lru-scorer
    weight: 2
`;

/** The ConfigError lines a config text produces. */
function issuesOf(text: string): string[] {
  try {
    parseEndpointPickerConfig(text, 'router.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

const header = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n';

describe('EndpointPickerConfig', () => {
  it('parses an llm-d config, naming plugins by type and filling defaults', () => {
    const config = parseEndpointPickerConfig(OPTIMIZED_BASELINE, 'optimized-baseline.yaml');
    expect(config.plugins.map((p) => p.name)).toEqual([
      'queue-scorer',
      'kv-cache-utilization-scorer',
      'approx-prefix-cache-producer',
      'prefix-cache-scorer',
      'no-hit-lru-scorer',
    ]);
    expect(config.plugins[2]!.parameters).toEqual({ maxPrefixTokensToMatch: 100000 });
    expect(config.plugins[0]!.parameters).toEqual({});
    expect(config.schedulingProfiles[0]!.plugins.map((p) => p.weight)).toEqual([2, 2, 3, 2]);
    expect(config.saturationDetector).toEqual({ queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8, metricsStalenessThreshold: '200ms' });
    expect(config.featureGates).toEqual([]);
    expect(config.models).toEqual([]);
  });

  it('defaults a profile plugin weight to 1 and accepts the deprecated apiVersion and kvroute models', () => {
    const config = parseEndpointPickerConfig(
      `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins: [{type: queue-scorer, name: q}]
schedulingProfiles: [{name: p, plugins: [{pluginRef: q}]}]
saturationDetector: {metricsStalenessThreshold: 1m30s}
models:
- modelName: chat
  criticality: Sheddable
  targetModels: [{name: base, weight: 3}, {name: lora-a, weight: 1}]
- modelName: plain
`,
      'x.yaml',
    );
    expect(config.apiVersion).toBe('inference.networking.x-k8s.io/v1alpha1');
    expect(config.schedulingProfiles[0]!.plugins).toEqual([{ pluginRef: 'q', weight: 1 }]);
    expect(config.saturationDetector.metricsStalenessThreshold).toBe('1m30s');
    expect(config.models).toEqual([
      {
        modelName: 'chat',
        criticality: 'Sheddable',
        targetModels: [
          { name: 'base', weight: 3 },
          { name: 'lora-a', weight: 1 },
        ],
      },
      { modelName: 'plain', criticality: 'Standard', targetModels: [] },
    ]);
  });

  it('rejects a profile that refers to a plugin that does not exist, naming the field', () => {
    const text = `${header}plugins: [{type: queue-scorer}, {type: max-score-picker}]
schedulingProfiles:
- name: default
  plugins: [{pluginRef: queue-scorer}, {pluginRef: foo}]
`;
    expect(issuesOf(text)).toEqual([
      'schedulingProfiles[0].plugins[1].pluginRef: no plugin named "foo" (plugins: queue-scorer, max-score-picker)',
    ]);
    expect(() => parseEndpointPickerConfig(text, 'router.yaml')).toThrow(
      'router.yaml: schedulingProfiles[0].plugins[1].pluginRef: no plugin named "foo"',
    );
  });

  it.each<[string, string, string[]]>([
    [
      'duplicate plugin names',
      `plugins: [{type: queue-scorer}, {type: kv-cache-utilization-scorer, name: queue-scorer}]\nschedulingProfiles: [{name: d}]`,
      ['plugins[1].name: duplicate plugin name "queue-scorer" (also plugins[0]); give one of them a distinct name'],
    ],
    [
      'a negative weight',
      `plugins: [{type: queue-scorer}]\nschedulingProfiles: [{name: d, plugins: [{pluginRef: queue-scorer, weight: -1}]}]`,
      ['schedulingProfiles[0].plugins[0].weight: expected number >= 0, got -1'],
    ],
    [
      'a weight that is not a number',
      `plugins: [{type: queue-scorer}]\nschedulingProfiles: [{name: d, plugins: [{pluginRef: queue-scorer, weight: high}]}]`,
      ['schedulingProfiles[0].plugins[0].weight: expected number, got "high"'],
    ],
    [
      'duplicate profile names',
      `schedulingProfiles: [{name: d}, {name: d}]`,
      ['schedulingProfiles[1].name: duplicate profile name "d" (also schedulingProfiles[0])'],
    ],
    ['no profile', `plugins: []\nschedulingProfiles: []`, ['schedulingProfiles: expected at least one scheduling profile']],
    ['a missing profile list', `plugins: []`, ['schedulingProfiles: required (expected array)']],
    ['a plugin without a type', `plugins: [{name: x}]\nschedulingProfiles: [{name: d}]`, ['plugins[0].type: required (expected string)']],
    [
      'an unknown field in a plugin',
      `plugins: [{type: queue-scorer, params: {}}]\nschedulingProfiles: [{name: d}]`,
      ['plugins[0].params: unknown field'],
    ],
    ['an unknown top-level field', `schedulingProfile: []\nschedulingProfiles: [{name: d}]`, ['schedulingProfile: unknown field']],
    [
      'parameters that are not a mapping',
      `plugins: [{type: queue-scorer, parameters: [1]}]\nschedulingProfiles: [{name: d}]`,
      ['plugins[0].parameters: expected record, got an array'],
    ],
    [
      'a bad duration',
      `schedulingProfiles: [{name: d}]\nsaturationDetector: {metricsStalenessThreshold: 200}`,
      ['saturationDetector.metricsStalenessThreshold: expected string, got 200'],
    ],
    [
      'a duration without a unit',
      `schedulingProfiles: [{name: d}]\nsaturationDetector: {metricsStalenessThreshold: "200"}`,
      ['saturationDetector.metricsStalenessThreshold: expected a duration such as "200ms", "2s" or "1m30s", got "200"'],
    ],
    [
      'a KV threshold above 1',
      `schedulingProfiles: [{name: d}]\nsaturationDetector: {kvCacheUtilThreshold: 1.5}`,
      ['saturationDetector.kvCacheUtilThreshold: expected number <= 1, got 1.5'],
    ],
    [
      'an unknown criticality',
      `schedulingProfiles: [{name: d}]\nmodels: [{modelName: a, criticality: Low}]`,
      ['models[0].criticality: expected one of "Critical", "Standard", "Sheddable", got "Low"'],
    ],
    [
      'duplicate models',
      `schedulingProfiles: [{name: d}]\nmodels: [{modelName: a}, {modelName: a}]`,
      ['models[1].modelName: duplicate model "a" (also models[0])'],
    ],
    [
      'weights on some target models only',
      `schedulingProfiles: [{name: d}]\nmodels: [{modelName: a, targetModels: [{name: x, weight: 1}, {name: y}]}]`,
      ['models[0].targetModels: expected a weight on every target model or on none'],
    ],
    [
      'a plugin listed twice in a profile',
      `plugins: [{type: queue-scorer}]\nschedulingProfiles: [{name: d, plugins: [{pluginRef: queue-scorer}, {pluginRef: queue-scorer}]}]`,
      ['schedulingProfiles[0].plugins[1].pluginRef: plugin "queue-scorer" is listed twice in this profile'],
    ],
  ])('rejects %s, naming the field', (_case, body, expected) => {
    expect(issuesOf(header + body)).toEqual(expected);
  });

  it('rejects another apiVersion or kind, saying what is accepted', () => {
    expect(issuesOf('apiVersion: v1\nkind: ConfigMap\nschedulingProfiles: [{name: d}]')).toEqual([
      'apiVersion: expected one of "llm-d.ai/v1alpha1", "inference.networking.x-k8s.io/v1alpha1", got "v1"',
      'kind: expected "EndpointPickerConfig", got "ConfigMap"',
    ]);
  });

  it('rejects YAML that does not parse, naming the line, and files that are not a mapping', () => {
    const [issue] = issuesOf(`${header}plugins: [{type: queue-scorer}\nschedulingProfiles: x`);
    expect(issue).toBe(
      'line 4, column 1: not valid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]',
    );
    expect(issuesOf('')).toEqual(['(root): empty file, expected an EndpointPickerConfig']);
    expect(issuesOf('- a\n- b')).toEqual(['(root): expected a mapping (apiVersion, kind, plugins, schedulingProfiles), got an array']);
    expect(issuesOf(`${header}kind: Other\nschedulingProfiles: [{name: d}]`)[0]).toMatch(
      /^line 3, column 1: not valid YAML: Map keys must be unique/,
    );
  });

  it('formats parameter errors of a plugin schema under the plugin path', () => {
    const schema = z.strictObject({ loadBound: z.number().min(1) });
    expect(() => parseWithSchema(schema, { loadBound: 0.5 }, 'router.yaml', 'plugins[2].parameters')).toThrow(
      'router.yaml: plugins[2].parameters.loadBound: expected number >= 1, got 0.5',
    );
    expect(() => parseWithSchema(schema, { loadBound: 2, x: 1 }, 'router.yaml', 'plugins[2].parameters')).toThrow(
      'plugins[2].parameters.x: unknown field',
    );
  });

  it("has kvroute's default: load bound, precise prefix 3 (indexer at 127.0.0.1:9004, 200 ms), no-hit LRU 1, queue 1, KV 1, running requests 1, max-score picker", () => {
    const profile = DEFAULT_ENDPOINT_PICKER_CONFIG.schedulingProfiles[0]!;
    expect(profile.plugins).toEqual([
      { pluginRef: 'load-bound-filter', weight: 1 },
      { pluginRef: 'prefix-cache-scorer', weight: 3 },
      { pluginRef: 'no-hit-lru-scorer', weight: 1 },
      { pluginRef: 'queue-scorer', weight: 1 },
      { pluginRef: 'kv-cache-utilization-scorer', weight: 1 },
      { pluginRef: 'running-requests-scorer', weight: 1 },
      { pluginRef: 'max-score-picker', weight: 1 },
    ]);
    const parameters = (type: string) => DEFAULT_ENDPOINT_PICKER_CONFIG.plugins.find((p) => p.type === type)?.parameters;
    expect(parameters('precise-prefix-cache-producer')).toEqual({ indexerAddress: '127.0.0.1:9004', timeoutMs: 200 });
    // Both prefix consumers read the one indexer call.
    expect(parameters('prefix-cache-scorer')).toEqual({ prefixMatchInfoProducerName: 'precise-prefix-cache-producer' });
    expect(parameters('no-hit-lru-scorer')).toEqual({
      prefixMatchInfoProducerName: 'precise-prefix-cache-producer',
      warmMatchFraction: 0.25,
    });
    // The benchmark's precise-prefix strategy waits for the indexer as long as kvroute's default does.
    expect(STRATEGY_CONFIGS['precise-prefix'].plugins[0]!.parameters).toEqual({ indexerAddress: '127.0.0.1:9004', timeoutMs: 200 });
    expect(STRATEGY_CONFIGS.kvroute).toBe(DEFAULT_ENDPOINT_PICKER_CONFIG);
  });

  it('describes each benchmark strategy with the plugins it names', () => {
    const refs = Object.fromEntries(
      Object.entries(STRATEGY_CONFIGS).map(([name, c]) => [
        name,
        c.schedulingProfiles[0]!.plugins.map((p) => `${p.pluginRef}*${p.weight}`),
      ]),
    );
    expect(refs).toEqual({
      random: ['random-picker*1'],
      'round-robin': ['round-robin-picker*1'],
      load: ['queue-scorer*1', 'kv-cache-utilization-scorer*1', 'running-requests-scorer*1', 'max-score-picker*1'],
      'approx-prefix': ['prefix-cache-scorer*3', 'queue-scorer*2', 'kv-cache-utilization-scorer*2', 'max-score-picker*1'],
      'precise-prefix': ['precise-prefix-cache-scorer*1', 'max-score-picker*1'],
      kvroute: [
        'load-bound-filter*1',
        'prefix-cache-scorer*3',
        'no-hit-lru-scorer*1',
        'queue-scorer*1',
        'kv-cache-utilization-scorer*1',
        'running-requests-scorer*1',
        'max-score-picker*1',
      ],
    });
    expect(STRATEGY_CONFIGS['approx-prefix'].plugins.map((p) => p.type)).toContain('approx-prefix-cache-producer');
    // Round-trips through the schema unchanged: what the operator renders from them parses back.
    for (const config of Object.values(STRATEGY_CONFIGS))
      expect(validateEndpointPickerConfig(JSON.parse(JSON.stringify(config)))).toEqual(config);
  });
});
