import { describe, expect, it } from '@jest/globals';
import { allCrds, type JsonSchema } from './crd.ts';
import { InferenceModel, modelPriority } from './inference-model.ts';
import { InferencePool, poolTargetPorts } from './inference-pool.ts';
import { describeIssues } from './meta.ts';

const pool = (spec: Record<string, unknown>) =>
  InferencePool.safeParse({ apiVersion: 'inference.kvroute.io/v1alpha1', kind: 'InferencePool', metadata: { name: 'p' }, spec });
/** The issues of an invalid pool, as the operator and `kvroute render` report them. */
const issues = (spec: Record<string, unknown>) => {
  const r = pool(spec);
  if (r.success) throw new Error('expected the pool to be invalid');
  return describeIssues(r.error);
};
const served = { model: { name: 'm' }, modelServer: { image: 'vllm' } };

describe('InferencePool spec: GIE shapes', () => {
  it("takes GIE's selector.matchLabels and targetPorts[].number, and defaults the ports to the model servers' (else 8000)", () => {
    const adopted = pool({
      model: { name: 'm' },
      selector: { matchLabels: { app: 'vllm' } },
      targetPorts: [{ number: 8000 }, { number: 8001 }],
    });
    expect(adopted.success && poolTargetPorts(adopted.data.spec)).toEqual([8000, 8001]);
    const defaulted = pool({ model: { name: 'm' }, selector: { matchLabels: { app: 'vllm' } } });
    expect(defaulted.success && poolTargetPorts(defaulted.data.spec)).toEqual([8000]);
    const own = pool({ ...served, modelServer: { image: 'vllm', port: 9000 } });
    expect(own.success && poolTargetPorts(own.data.spec)).toEqual([9000]);
  });

  it('rejects the old flat selector and targetPort, naming the field', () => {
    expect(issues({ model: { name: 'm' }, selector: { app: 'vllm' } })).toContain('selector.matchLabels: Invalid input: expected record');
  });

  it('rejects duplicate, missing and too many target ports', () => {
    const sel = { model: { name: 'm' }, selector: { matchLabels: { app: 'vllm' } } };
    expect(issues({ ...sel, targetPorts: [{ number: 8000 }, { number: 8000 }] })).toBe('spec.targetPorts: expected unique port numbers');
    expect(issues({ ...sel, targetPorts: [] })).toMatch(/^spec.targetPorts: Too small/);
    expect(issues({ ...sel, targetPorts: Array.from({ length: 9 }, (_, i) => ({ number: 8000 + i })) })).toMatch(
      /^spec.targetPorts: Too big/,
    );
  });

  it('needs 1 to 64 selector labels with valid label keys and values', () => {
    expect(issues({ model: { name: 'm' }, selector: { matchLabels: {} } })).toBe('spec.selector.matchLabels: expected 1 to 64 labels');
    expect(issues({ model: { name: 'm' }, selector: { matchLabels: { app: 'not a value!' } } })).toContain(
      'selector.matchLabels.app: expected a label value',
    );
  });
});

describe('InferencePool spec: cross-field rules (checked by zod here and by CEL in the API server)', () => {
  it.each([
    [
      'selector and poolRef together',
      { model: { name: 'm' }, selector: { matchLabels: { a: 'b' } }, poolRef: { name: 'gie' } },
      'poolRef: selector and poolRef are mutually exclusive',
    ],
    ['neither selector, poolRef nor modelServer', { model: { name: 'm' } }, 'selector: selector is required when modelServer is absent'],
    [
      'modelServer with poolRef',
      { modelServer: { image: 'i' }, poolRef: { name: 'gie' } },
      'modelServer: modelServer cannot be used with poolRef',
    ],
    [
      'targetPorts with poolRef',
      { poolRef: { name: 'gie' }, targetPorts: [{ number: 8000 }] },
      'targetPorts: targetPorts cannot be used with poolRef',
    ],
    ['no model without poolRef', { modelServer: { image: 'i' } }, 'model: model is required unless poolRef is set'],
    [
      "targetPorts other than the model servers' port",
      { ...served, targetPorts: [{ number: 8001 }] },
      'targetPorts: targetPorts must be unset or [{number: modelServer.port}]',
    ],
    [
      'event port on the vLLM port',
      { ...served, indexer: { eventPort: 8000 } },
      'indexer: indexer.eventPort and indexer.replayPort must differ from modelServer.port',
    ],
    [
      'fewer GPUs than tensor-parallel ranks',
      { model: { name: 'm' }, modelServer: { image: 'i', tensorParallelSize: 4, resources: { limits: { 'nvidia.com/gpu': 2 } } } },
      'modelServer.tensorParallelSize: expected resources.limits["nvidia.com/gpu"] to be at least tensorParallelSize',
    ],
  ])('rejects %s, naming the field', (_what, spec, message) => {
    expect(issues(spec)).toContain(message);
  });

  it('accepts a pool that holds only kvroute settings and points at a GIE InferencePool, defaulting its group', () => {
    const r = pool({ poolRef: { name: 'gie' }, router: { replicas: 2 } });
    expect(r.success && r.data.spec.poolRef).toEqual({ name: 'gie', group: 'inference.networking.k8s.io' });
    expect(r.success && poolTargetPorts(r.data.spec)).toBeUndefined();
    expect(issues({ poolRef: { name: 'gie', group: 'inference.networking.x-k8s.io' } })).toContain('poolRef.group');
  });

  it("defaults the serving label to llm-d's and takes another, such as current llm-d charts' inference-serving", () => {
    const d = pool({ ...served });
    expect(d.success && d.data.spec.servingLabel).toEqual({ key: 'llm-d.ai/inferenceServing', value: 'true' });
    const chart = pool({ ...served, servingLabel: { key: 'llm-d.ai/inference-serving' } });
    expect(chart.success && chart.data.spec.servingLabel).toEqual({ key: 'llm-d.ai/inference-serving', value: 'true' });
    expect(issues({ ...served, servingLabel: { key: 'bad key' } })).toContain('servingLabel.key: expected a label key');
  });

  it('always has a hash seed, "0" by default, and refuses one Python would not take', () => {
    const d = pool(served);
    expect(d.success && d.data.spec.modelServer!.hashSeed).toBe('0');
    expect(issues({ model: { name: 'm' }, modelServer: { image: 'i', hashSeed: 'random' } })).toContain(
      'modelServer.hashSeed: expected PYTHONHASHSEED',
    );
    expect(issues({ model: { name: 'm' }, modelServer: { image: 'i', hashSeed: '4294967296' } })).toContain('modelServer.hashSeed');
  });

  it('emits every cross-field rule as CEL with the field it names, so the API server reports the same field', () => {
    const crd = allCrds()['inference.kvroute.io_inferencepools.yaml']!;
    const spec = (((crd.spec as JsonSchema).versions as JsonSchema[])[0]!.schema as { openAPIV3Schema: JsonSchema }).openAPIV3Schema
      .properties as Record<string, JsonSchema>;
    const rules = spec.spec!['x-kubernetes-validations'] as { rule: string; message: string; fieldPath?: string }[];
    expect(rules.map((r) => r.fieldPath)).toEqual([
      '.poolRef',
      '.selector',
      '.modelServer',
      '.targetPorts',
      '.model',
      '.targetPorts',
      '.indexer',
      '.gateway.backendRef',
    ]);
    const ports = (spec.spec!.properties as Record<string, JsonSchema>).targetPorts!;
    expect(ports['x-kubernetes-validations']).toEqual([
      { rule: 'self.all(p, self.exists_one(q, q.number == p.number))', message: 'port numbers must be unique' },
    ]);
  });
});

describe('InferenceModel priority', () => {
  const model = (spec: Record<string, unknown>) =>
    InferenceModel.parse({
      apiVersion: 'inference.kvroute.io/v1alpha1',
      kind: 'InferenceModel',
      metadata: { name: 'm' },
      spec: { modelName: 'm', poolRef: { name: 'p' }, ...spec },
    });

  it("uses GIE's integer priority (unset is 0), maps the deprecated criticality onto it, and lets priority win", () => {
    expect(modelPriority(model({}).spec)).toBe(0);
    expect(modelPriority(model({ priority: 7 }).spec)).toBe(7);
    expect(modelPriority(model({ criticality: 'Critical' }).spec)).toBe(1);
    expect(modelPriority(model({ criticality: 'Sheddable' }).spec)).toBe(-1);
    expect(modelPriority(model({ criticality: 'Sheddable', priority: 3 }).spec)).toBe(3);
  });

  it('takes an optional adapter source on a target model', () => {
    expect(model({ targetModels: [{ name: 'sql-lora', source: 'org/sql-lora' }] }).spec.targetModels).toEqual([
      { name: 'sql-lora', source: 'org/sql-lora' },
    ]);
  });
});
