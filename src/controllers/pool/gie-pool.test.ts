import { describe, it, expect } from '@jest/globals';
import { testPool } from '../testing.ts';
import { buildGieInferencePool, wantsGieInferencePool } from './gie-pool.ts';

const served = { model: { name: 'meta-llama/Llama-3.1-8B-Instruct' }, modelServer: { image: 'vllm/vllm-openai:v0.33.0' } };

describe('GIE InferencePool', () => {
  it("selects the pool's serving pods on its target port and names the router Service as endpoint picker with the pool's failure mode", () => {
    const gie = buildGieInferencePool(testPool({ ...served, router: { failureMode: 'FailOpen' } }));
    expect(gie.apiVersion).toBe('inference.networking.k8s.io/v1');
    expect(gie.kind).toBe('InferencePool');
    expect(gie.spec).toEqual({
      selector: {
        matchLabels: {
          'inference.kvroute.io/pool': 'llama',
          'app.kubernetes.io/component': 'model-server',
          'llm-d.ai/inferenceServing': 'true',
        },
      },
      targetPorts: [{ number: 8000 }],
      endpointPickerRef: { kind: 'Service', name: 'llama-router', port: { number: 9002 }, failureMode: 'FailOpen' },
    });
  });

  it('has the name of the kvroute pool, so an HTTPRoute backendRef names the pool users know, and is owned by it', () => {
    const gie = buildGieInferencePool(
      testPool({ model: { name: 'm' }, selector: { matchLabels: { app: 'vllm' } } }, { name: 'qwen', namespace: 'team' }),
    );
    expect(gie.metadata).toMatchObject({ name: 'qwen', namespace: 'team' });
    expect(gie.metadata.ownerReferences).toEqual([
      expect.objectContaining({ apiVersion: 'inference.kvroute.io/v1alpha1', kind: 'InferencePool', name: 'qwen', controller: true }),
    ]);
    expect(gie.spec.selector.matchLabels).toEqual({ app: 'vllm', 'llm-d.ai/inferenceServing': 'true' });
  });

  it('is wanted on the GIE path only: not on the EnvoyFilter path', () => {
    expect(wantsGieInferencePool(testPool(served))).toBe(true);
    const envoyFilter = testPool({
      ...served,
      gateway: { envoyFilter: true, workloadSelector: { istio: 'ingressgateway' }, routeNames: ['r'] },
    });
    expect(wantsGieInferencePool(envoyFilter)).toBe(false);
  });
});
