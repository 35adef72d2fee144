import { describe, expect, it } from '@jest/globals';
import type { V1Pod } from '@kubernetes/client-node';
import { podEndpoints, podNotServing, poolCollectionPath, selectionFromPool } from './pool-selection.ts';

const serving = { key: 'llm-d.ai/inferenceServing', value: 'true' };
const selection = { selector: { app: 'vllm' }, targetPorts: [8000, 8001] };

function pod(
  name: string,
  overrides: { labels?: Record<string, string>; phase?: string; ip?: string | null; ready?: string; deleting?: boolean } = {},
): V1Pod {
  return {
    metadata: {
      name,
      namespace: 'ml',
      labels: overrides.labels ?? { app: 'vllm', 'llm-d.ai/inferenceServing': 'true' },
      ...(overrides.deleting ? { deletionTimestamp: new Date('2026-01-01T00:00:00Z') } : {}),
    },
    status: {
      phase: overrides.phase ?? 'Running',
      ...(overrides.ip === null ? {} : { podIP: overrides.ip ?? '10.0.0.5' }),
      conditions: [
        { type: 'PodScheduled', status: 'True' },
        { type: 'Ready', status: overrides.ready ?? 'True' },
      ],
    },
  };
}

describe('podEndpoints', () => {
  it('gives one endpoint per target port of a Ready, Running, selected and serving pod', () => {
    expect(podEndpoints(pod('a'), selection, serving)).toEqual([
      {
        address: '10.0.0.5:8000',
        ip: '10.0.0.5',
        port: 8000,
        name: 'a',
        namespace: 'ml',
        labels: { app: 'vllm', 'llm-d.ai/inferenceServing': 'true' },
      },
      {
        address: '10.0.0.5:8001',
        ip: '10.0.0.5',
        port: 8001,
        name: 'a',
        namespace: 'ml',
        labels: { app: 'vllm', 'llm-d.ai/inferenceServing': 'true' },
      },
    ]);
  });

  it('brackets an IPv6 pod IP in the address', () => {
    expect(
      podEndpoints(pod('a', { ip: 'fd00::12' }), { selector: { app: 'vllm' }, targetPorts: [8000] }, serving).map((e) => e.address),
    ).toEqual(['[fd00::12]:8000']);
  });

  it.each([
    ['without the serving label', pod('a', { labels: { app: 'vllm' } }), 'not labelled llm-d.ai/inferenceServing=true'],
    ['with the serving label false', pod('a', { labels: { app: 'vllm', 'llm-d.ai/inferenceServing': 'false' } }), 'not labelled'],
    ['outside the selector', pod('a', { labels: { app: 'other', 'llm-d.ai/inferenceServing': 'true' } }), 'not selected by the pool'],
    ['being deleted', pod('a', { deleting: true }), 'terminating'],
    ['Pending', pod('a', { phase: 'Pending' }), 'phase Pending'],
    ['without an IP', pod('a', { ip: null }), 'no pod IP'],
    ['not Ready', pod('a', { ready: 'False' }), 'not Ready'],
  ])('gives no endpoint for a pod %s', (_what, p, reason) => {
    expect(podNotServing(p, selection, serving)).toContain(reason);
    expect(podEndpoints(p, selection, serving)).toEqual([]);
  });
});

describe('selectionFromPool', () => {
  it("reads a GIE v1 pool's matchLabels and target port numbers", () => {
    const pool = {
      metadata: { name: 'p' },
      spec: {
        selector: { matchLabels: { app: 'vllm' } },
        targetPorts: [{ number: 8000 }, { number: 8002 }],
        endpointPickerRef: { name: 'epp' },
      },
    };
    expect(selectionFromPool('inference.networking.k8s.io', pool)).toEqual({ selector: { app: 'vllm' }, targetPorts: [8000, 8002] });
  });

  it("reads GIE's legacy v1alpha2 selector map and targetPortNumber", () => {
    const pool = { metadata: { name: 'p' }, spec: { selector: { app: 'vllm' }, targetPortNumber: 8000, extensionRef: { name: 'epp' } } };
    expect(selectionFromPool('inference.networking.x-k8s.io', pool)).toEqual({ selector: { app: 'vllm' }, targetPorts: [8000] });
  });

  it("reads a kvroute pool's selector.matchLabels and targetPorts, or the operator's model-server labels when it has no selector", () => {
    const adopted = {
      metadata: { name: 'llama' },
      spec: { model: { name: 'm' }, selector: { matchLabels: { app: 'vllm' } }, targetPorts: [{ number: 8080 }, { number: 8081 }] },
    };
    expect(selectionFromPool('inference.kvroute.io', adopted)).toEqual({ selector: { app: 'vllm' }, targetPorts: [8080, 8081] });
    const defaultPort = { metadata: { name: 'llama' }, spec: { model: { name: 'm' }, selector: { matchLabels: { app: 'vllm' } } } };
    expect(selectionFromPool('inference.kvroute.io', defaultPort)).toEqual({ selector: { app: 'vllm' }, targetPorts: [8000] });
    const served = {
      metadata: { name: 'llama' },
      spec: { model: { name: 'm' }, modelServer: { image: 'vllm' } },
      status: { whatever: true },
    };
    expect(selectionFromPool('inference.kvroute.io', served)).toEqual({
      selector: { 'inference.kvroute.io/pool': 'llama', 'app.kubernetes.io/component': 'model-server' },
      targetPorts: [8000],
    });
  });

  it('names the bad field of an invalid pool', () => {
    expect(() =>
      selectionFromPool('inference.networking.k8s.io', {
        metadata: { name: 'p' },
        spec: { selector: { matchLabels: {} }, targetPorts: [{ number: 8000 }] },
      }),
    ).toThrow('InferencePool p (inference.networking.k8s.io): spec.selector.matchLabels: expected at least one label');
    expect(() =>
      selectionFromPool('inference.networking.k8s.io', {
        metadata: { name: 'p' },
        spec: { selector: { matchLabels: { a: 'b' } }, targetPorts: [{ number: 70000 }] },
      }),
    ).toThrow(/spec\.targetPorts\.0\.number/);
    expect(() =>
      selectionFromPool('inference.kvroute.io', {
        metadata: { name: 'p' },
        spec: { model: { name: 'm' }, selector: { matchLabels: { a: 'b' } }, targetPorts: [{ number: 0 }] },
      }),
    ).toThrow(/spec\.targetPorts\.0\.number/);
  });

  it('points a kvroute pool that takes its pods from a GIE pool (poolRef) at that pool instead of reading it', () => {
    expect(() => selectionFromPool('inference.kvroute.io', { metadata: { name: 'p' }, spec: { poolRef: { name: 'gie' } } })).toThrow(
      'InferencePool p (inference.kvroute.io): spec.poolRef: the pods come from InferencePool gie (inference.networking.k8s.io); run the router with --pool-group=inference.networking.k8s.io --pool-name=gie',
    );
  });

  it('rejects an unsupported group, listing the supported ones', () => {
    expect(() => poolCollectionPath('example.com', 'ml')).toThrow(
      /--pool-group "example.com": expected one of inference.networking.k8s.io, inference.networking.x-k8s.io, inference.kvroute.io/,
    );
    expect(poolCollectionPath('inference.kvroute.io', 'ml')).toBe('/apis/inference.kvroute.io/v1alpha1/namespaces/ml/inferencepools');
    expect(poolCollectionPath('inference.networking.k8s.io', 'ml')).toBe(
      '/apis/inference.networking.k8s.io/v1/namespaces/ml/inferencepools',
    );
  });
});
