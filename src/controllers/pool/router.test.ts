import { describe, expect, it } from '@jest/globals';
import YAML from 'yaml';
import { parseEndpointPickerConfig } from '../../api/endpoint-picker-config.ts';
import { parseIndexerConfig } from '../../api/indexer-config.ts';
import { testModel, testPool } from '../testing.ts';
import { buildRouterConfigMap, buildRouterDeployment, buildRouterRbac } from './router.ts';
import { resolveSelection } from './selection.ts';

const gie = { selector: { app: 'gie-vllm' }, targetPorts: [8000] };
const rides = testPool({ poolRef: { name: 'gie' }, servingLabel: { key: 'llm-d.ai/inference-serving', value: 'true' } }, { name: 'rides' });

describe('router of a pool that rides on a GIE InferencePool (spec.poolRef)', () => {
  it('follows the GIE pool by name and group, with the serving label, and no --model when the pool names none', () => {
    const args = buildRouterDeployment(rides, { defaultImage: 'kvroute:test' }).spec!.template.spec!.containers[0]!.args!;
    expect(args.slice(5)).toEqual([
      '--pool-name=gie',
      '--pool-namespace=ml',
      '--pool-group=inference.networking.k8s.io',
      '--serving-label=llm-d.ai/inference-serving=true',
    ]);
  });

  it("lets the router read the GIE group's InferencePools instead of kvroute's", () => {
    const [, role] = buildRouterRbac(rides);
    expect(role.rules![1]).toEqual({
      apiGroups: ['inference.networking.k8s.io'],
      resources: ['inferencepools'],
      verbs: ['get', 'list', 'watch'],
    });
  });

  it("gives the indexer the GIE pool's selector and the pool's serving label", () => {
    const indexer = parseIndexerConfig(YAML.parse(buildRouterConfigMap(rides, [], gie).data!['indexer.yaml']!), 'indexer.yaml');
    expect(indexer.zmq.discovery).toMatchObject({
      selector: { app: 'gie-vllm' },
      servingLabel: { key: 'llm-d.ai/inference-serving', value: 'true' },
    });
    expect(indexer.tokenizers).toEqual({});
  });

  it('refuses to render its ConfigMap before the poolRef is resolved', () => {
    expect(() => buildRouterConfigMap(rides, [])).toThrow('spec.poolRef must be resolved');
  });

  it('passes a model without targets through under its own name when the pool names no base model', () => {
    const config = parseEndpointPickerConfig(
      buildRouterConfigMap(rides, [testModel('chat', { modelName: 'chat', poolRef: { name: 'rides' } })], gie).data!['router.yaml']!,
      'router.yaml',
    );
    expect(config.models).toEqual([{ modelName: 'chat', criticality: 'Standard', priority: 0, targetModels: [] }]);
  });
});

describe('router.yaml models and indexer.yaml adapters', () => {
  const pool = testPool({ model: { name: 'base' }, modelServer: { image: 'vllm' } });

  it("renders each model's GIE priority, from priority or the deprecated criticality", () => {
    const models = [
      testModel('a', { modelName: 'batch', poolRef: { name: 'llama' }, criticality: 'Sheddable' }),
      testModel('b', { modelName: 'gold', poolRef: { name: 'llama' }, priority: 10, criticality: 'Sheddable' }),
    ];
    const config = parseEndpointPickerConfig(buildRouterConfigMap(pool, models).data!['router.yaml']!, 'router.yaml');
    expect(config.models.map((m) => [m.modelName, m.priority])).toEqual([
      ['batch', -1],
      ['gold', 10],
    ]);
  });

  it("tells the indexer each adapter's path as vLLM was given it, since vLLM hashes it into adapter blocks", () => {
    const cm = buildRouterConfigMap(pool, [], undefined, [{ name: 'sql-lora', source: 'org/sql' }]);
    expect(parseIndexerConfig(YAML.parse(cm.data!['indexer.yaml']!), 'indexer.yaml').loras).toEqual({ 'sql-lora': 'org/sql' });
  });
});

describe('resolveSelection', () => {
  const gieObject = (spec: unknown) => ({
    apiVersion: 'inference.networking.k8s.io/v1',
    kind: 'InferencePool',
    metadata: { name: 'gie', namespace: 'ml' },
    spec,
  });

  it("is the pool's own selection without poolRef", () => {
    expect(resolveSelection(testPool({ model: { name: 'm' }, selector: { matchLabels: { app: 'x' } } }), () => undefined)).toEqual({
      selection: { selector: { app: 'x' }, targetPorts: [8000] },
    });
  });

  it('reads the selector and unique ports of the GIE pool a poolRef names', () => {
    const found = resolveSelection(rides, () =>
      gieObject({ selector: { matchLabels: { app: 'gie-vllm' } }, targetPorts: [{ number: 8000 }, { number: 8001 }] }),
    );
    expect(found).toEqual({ selection: { selector: { app: 'gie-vllm' }, targetPorts: [8000, 8001] } });
  });

  it('says why when the GIE pool is missing or unusable, naming it and the field', () => {
    expect(resolveSelection(rides, () => undefined)).toEqual({
      problem: {
        reason: 'PoolRefNotFound',
        message: expect.stringContaining('InferencePool "gie" (inference.networking.k8s.io) does not exist in namespace "ml"'),
      },
    });
    const bad = resolveSelection(rides, () => gieObject({ selector: { matchLabels: {} }, targetPorts: [{ number: 8000 }] }));
    expect(bad).toEqual({
      problem: { reason: 'PoolRefInvalid', message: expect.stringContaining('spec.selector.matchLabels: expected at least one label') },
    });
  });
});
