import { describe, expect, it } from '@jest/globals';
import type { V1Container, V1PodSpec } from '@kubernetes/client-node';
import { testModel, testPool } from '../testing.ts';
import { poolAdapters } from './lora.ts';
import { buildModelServerDeployment, modelServerResources, vllmArgs } from './model-server.ts';

const served = { model: { name: 'meta-llama/Llama-3.1-8B-Instruct' }, modelServer: { image: 'vllm/vllm-openai:v0.33.0' } };
const podOf = (
  spec: Record<string, unknown>,
  adapters: Parameters<typeof buildModelServerDeployment>[1] = [],
): { pod: V1PodSpec; vllm: V1Container } => {
  const d = buildModelServerDeployment(testPool(spec), adapters)!;
  const pod = d.spec!.template.spec!;
  return { pod, vllm: pod.containers[0]! };
};
const env = (c: V1Container, name: string) => c.env!.find((e) => e.name === name);

describe('vLLM pod resources', () => {
  it('requests 4 CPUs and 16Gi by default, so the pod is not BestEffort, and sets no limits of its own', () => {
    expect(podOf(served).vllm.resources).toEqual({ requests: { cpu: '4', memory: '16Gi' } });
  });

  it("keeps the pool's requests and limits, defaulting only what the pool names neither a request nor a limit for", () => {
    const resources = { requests: { cpu: '8' }, limits: { memory: '32Gi', 'nvidia.com/gpu': 1 } };
    expect(podOf({ ...served, modelServer: { ...served.modelServer, resources } }).vllm.resources).toEqual({
      requests: { cpu: '8' },
      limits: { memory: '32Gi', 'nvidia.com/gpu': '1' },
    });
  });

  it('asks for one GPU per tensor-parallel rank when the pool names no GPU, and passes --tensor-parallel-size', () => {
    const pool = testPool({ ...served, modelServer: { ...served.modelServer, tensorParallelSize: 4 } });
    expect(modelServerResources(pool.spec.modelServer!).limits).toEqual({ 'nvidia.com/gpu': '4' });
    expect(vllmArgs(pool, pool.spec.modelServer!)).toContain('--tensor-parallel-size=4');
    const { vllm } = podOf({ ...served, modelServer: { ...served.modelServer, tensorParallelSize: 4 } });
    expect(env(vllm, 'CUDA_VISIBLE_DEVICES')).toBeUndefined();
  });
});

describe('vLLM pod volumes and environment', () => {
  it('mounts /dev/shm in memory with a size limit and the model cache as an emptyDir, with HF_HOME on it', () => {
    const { pod, vllm } = podOf({ ...served, modelServer: { ...served.modelServer, shmSize: '16Gi', modelCache: { sizeLimit: '200Gi' } } });
    expect(pod.volumes).toEqual(
      expect.arrayContaining([
        { name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: '16Gi' } },
        { name: 'model-cache', emptyDir: { sizeLimit: '200Gi' } },
      ]),
    );
    expect(vllm.volumeMounts).toEqual(
      expect.arrayContaining([
        { name: 'dshm', mountPath: '/dev/shm' },
        { name: 'model-cache', mountPath: '/model-cache' },
      ]),
    );
    expect(env(vllm, 'HF_HOME')?.value).toBe('/model-cache');
    expect(pod.securityContext?.fsGroup).toBeUndefined();
  });

  it('keeps weights on a PVC when the pool names one, with fsGroup only when asked for (restricted-v2 assigns its own)', () => {
    const { pod, vllm } = podOf({ ...served, modelServer: { ...served.modelServer, modelCache: { claimName: 'weights', fsGroup: 1000 } } });
    expect(pod.volumes).toContainEqual({ name: 'model-cache', persistentVolumeClaim: { claimName: 'weights' } });
    expect(pod.volumes!.filter((v) => v.name === 'model-cache')).toHaveLength(1);
    expect(vllm.volumeMounts).toContainEqual({ name: 'model-cache', mountPath: '/model-cache' });
    expect(pod.securityContext).toMatchObject({
      fsGroup: 1000,
      fsGroupChangePolicy: 'OnRootMismatch',
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    const noGroup = podOf({ ...served, modelServer: { ...served.modelServer, modelCache: { claimName: 'weights' } } });
    expect(noGroup.pod.securityContext?.fsGroup).toBeUndefined();
  });

  it('always sets PYTHONHASHSEED (the pool seed, "0" by default), as vLLM hashes blocks randomly without it', () => {
    expect(env(podOf(served).vllm, 'PYTHONHASHSEED')?.value).toBe('0');
    expect(env(podOf({ ...served, modelServer: { ...served.modelServer, hashSeed: '1234' } }).vllm, 'PYTHONHASHSEED')?.value).toBe('1234');
    // A PYTHONHASHSEED in env cannot override the pool's: the indexer hashes with the pool's.
    const overridden = podOf({ ...served, modelServer: { ...served.modelServer, env: [{ name: 'PYTHONHASHSEED', value: '9' }] } }).vllm;
    expect(overridden.env!.filter((e) => e.name === 'PYTHONHASHSEED')).toEqual([{ name: 'PYTHONHASHSEED', value: '0' }]);
  });

  it('runs under the restricted pod security level', () => {
    const { pod, vllm } = podOf(served);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(vllm.securityContext).toMatchObject({ allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, runAsNonRoot: true });
  });
});

describe('vLLM probes and rollout', () => {
  it('probes /health with seconds-long timeouts, a minute of failed liveness checks, and a startup budget for weight loading', () => {
    const { vllm } = podOf(served);
    expect(vllm.readinessProbe).toEqual({
      httpGet: { path: '/health', port: 'http' },
      periodSeconds: 5,
      timeoutSeconds: 5,
      failureThreshold: 3,
    });
    expect(vllm.livenessProbe).toEqual({
      httpGet: { path: '/health', port: 'http' },
      periodSeconds: 10,
      timeoutSeconds: 10,
      failureThreshold: 6,
    });
    expect(vllm.startupProbe).toEqual({
      httpGet: { path: '/health', port: 'http' },
      periodSeconds: 10,
      timeoutSeconds: 5,
      failureThreshold: 180,
    });
    const slow = podOf({ ...served, modelServer: { ...served.modelServer, startupTimeoutSeconds: 3600 } }).vllm;
    expect(slow.startupProbe!.failureThreshold! * slow.startupProbe!.periodSeconds!).toBe(3600);
  });

  it('replaces pods one at a time without a surge pod, which would wait for a GPU the old pod holds', () => {
    expect(buildModelServerDeployment(testPool(served))!.spec!.strategy).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { maxSurge: 0, maxUnavailable: 1 },
    });
  });

  it("labels the pods with the pool's serving label", () => {
    const d = buildModelServerDeployment(testPool({ ...served, servingLabel: { key: 'llm-d.ai/inference-serving', value: 'true' } }))!;
    expect(d.spec!.template.metadata!.labels).toMatchObject({ 'llm-d.ai/inference-serving': 'true' });
    expect(d.spec!.template.metadata!.labels!['llm-d.ai/inferenceServing']).toBeUndefined();
  });
});

describe('LoRA adapters', () => {
  const pool = testPool({ model: { name: 'meta-llama/Llama-3.1-8B-Instruct', servedName: 'llama' }, modelServer: served.modelServer });
  const models = [
    testModel('support', {
      modelName: 'support',
      poolRef: { name: 'llama' },
      targetModels: [
        { name: 'llama', weight: 90 },
        { name: 'support-lora', weight: 10 },
      ],
    }),
    testModel('sql', { modelName: 'sql', poolRef: { name: 'llama' }, targetModels: [{ name: 'sql-lora', source: 'org/sql-adapter' }] }),
    testModel('chat', { modelName: 'chat', poolRef: { name: 'llama' } }),
  ];

  it("finds the adapters among the models' targets: any target but the base model, loaded from its source or its name", () => {
    expect(poolAdapters(pool, models)).toEqual([
      { name: 'sql-lora', source: 'org/sql-adapter' },
      { name: 'support-lora', source: 'support-lora' },
    ]);
    // The base model under either of its names is no adapter.
    expect(
      poolAdapters(pool, [
        testModel('x', { modelName: 'x', poolRef: { name: 'llama' }, targetModels: [{ name: 'meta-llama/Llama-3.1-8B-Instruct' }] }),
      ]),
    ).toEqual([]);
  });

  it('decides a source two models give differently by the model that sorts first, whatever their order', () => {
    const a = testModel('a', { modelName: 'a', poolRef: { name: 'llama' }, targetModels: [{ name: 'lora', source: 'from-a' }] });
    const b = testModel('b', { modelName: 'b', poolRef: { name: 'llama' }, targetModels: [{ name: 'lora', source: 'from-b' }] });
    expect(poolAdapters(pool, [b, a])).toEqual([{ name: 'lora', source: 'from-a' }]);
  });

  it('passes --enable-lora, --max-loras and every adapter after one --lora-modules (vLLM keeps only the last of repeated flags)', () => {
    const args = vllmArgs(pool, pool.spec.modelServer!, poolAdapters(pool, models));
    expect(args.slice(args.indexOf('--enable-lora'))).toEqual([
      '--enable-lora',
      '--max-loras=2',
      '--lora-modules',
      'sql-lora=org/sql-adapter',
      'support-lora=support-lora',
    ]);
    expect(vllmArgs(pool, pool.spec.modelServer!, [])).not.toContain('--enable-lora');
  });

  it('takes --max-loras and --max-lora-rank from the pool, and caps the default at 8 adapter slots', () => {
    const many = Array.from({ length: 12 }, (_, i) => ({ name: `l${i}`, source: `l${i}` }));
    expect(vllmArgs(pool, pool.spec.modelServer!, many)).toContain('--max-loras=8');
    const tuned = testPool({ ...served, modelServer: { ...served.modelServer, lora: { maxLoras: 3, maxLoraRank: 64 } } });
    const args = vllmArgs(tuned, tuned.spec.modelServer!, many);
    expect(args).toEqual(expect.arrayContaining(['--max-loras=3', '--max-lora-rank=64']));
    // extraArgs still come last, after the adapter list.
    const extra = testPool({ ...served, modelServer: { ...served.modelServer, extraArgs: ['--enforce-eager'] } });
    expect(vllmArgs(extra, extra.spec.modelServer!, many).at(-1)).toBe('--enforce-eager');
  });

  it('knows no adapters for a pool that names no base model (poolRef)', () => {
    expect(poolAdapters(testPool({ poolRef: { name: 'gie' } }), models)).toEqual([]);
  });
});
