// The router the operator deploys, started for real: the exact command line and router.yaml the
// operator renders for a pool (buildRouterDeployment, buildRouterConfigMap) run as a `kvroute router`
// process in Kubernetes mode against a real kube-apiserver holding that pool and a Ready serving pod
// (a simulated vLLM pod), behind a real Envoy. Only what a test process cannot take verbatim is
// rewritten: the fixed ports become 0 (several tests run at once), the ConfigMap mount path becomes a
// temporary file, and a kubeconfig replaces the in-cluster ServiceAccount.

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { V1Container } from '@kubernetes/client-node';
import { GROUP_VERSION } from '../src/api/meta.ts';
import { HealthService } from '../src/common/grpc/health.ts';
import { buildRouterConfigMap, buildRouterDeployment, CONFIG_DIR, ROUTER_PORTS } from '../src/controllers/pool/router.ts';
import { testModel, testPool } from '../src/controllers/testing.ts';
import { kubeTestsEnabled, startKube, usePortRange, type KubeEnv } from './kube/cluster.ts';
import { createNamespace, installKvrouteCrds } from './kube/fixtures.ts';
import { silentLogger } from '../src/common/log.ts';
import { startEnvoy, type RunningEnvoy } from '../src/gateway/envoy-process.ts';
import { portOf, spawnKvroute, type KvrouteProcess } from '../test/support/kvroute.ts';
import { until } from '../test/support/until.ts';
import { envoyAvailable, envoyBinary, envoyGatewayConfig, envoyRequired } from './support/envoy.ts';
import { metricValue } from './support/prometheus-text.ts';

const enabled = kubeTestsEnabled() && (envoyAvailable() || envoyRequired());
const describeBoth = enabled ? describe : describe.skip;
if (!enabled)
  console.warn('e2e/router-operator-args.test.ts skipped: needs kube-apiserver (hack/kube/install.sh) and Envoy (hack/envoy/install.sh)');

const NS = 'ml';
const POOL = 'llama';
const SERVED = 'llama-8b';
const POD_IP = '127.0.0.6';
const SERVING_LABEL = 'llm-d.ai/inferenceServing';

function healthCheck(port: number, service: string): Promise<string> {
  const client = new HealthService(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as grpc.Client & {
    Check(req: { service: string }, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void): void;
  };
  return new Promise((resolve, reject) =>
    client.Check({ service }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res!.status);
    }),
  );
}

describeBoth('the router command line and router.yaml rendered by the operator', () => {
  let dir: string;
  let env: KubeEnv;
  let sim: KvrouteProcess;
  let simPort: number;
  let router: KvrouteProcess;
  let routerPorts: { grpcPort: number; healthPort: number; metricsPort: number };
  let container: V1Container;
  let envoy: RunningEnvoy;

  beforeAll(async () => {
    usePortRange(16600, 16699);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-router-args-'));
    const simArgs = ['sim', '--host', POD_IP, '--port', '0', '--pod-id', POD_IP, '--model', SERVED, '--frontend-overhead-ms', '0'];
    [env, sim] = await Promise.all([startKube(), spawnKvroute(simArgs, { readyLine: 'simulated vllm pod ready' })]);
    simPort = portOf(sim.ready, 'port');
    await installKvrouteCrds(env.client);
    await createNamespace(env.client, NS);

    // The pool as a user writes it (adopting existing pods), and the one Ready serving pod it selects.
    const spec = {
      model: { name: 'meta-llama/Llama-3.1-8B-Instruct', servedName: SERVED },
      selector: { matchLabels: { app: 'vllm-args' } },
      targetPorts: [{ number: simPort }],
      router: {
        loadBound: 2,
        schedulingProfile: { scorerWeights: { prefixCache: 5, queueDepth: 1, kvCacheUtilization: 1 } },
        sessionAffinity: { enabled: true },
      },
    };
    await env.client.create({ apiVersion: GROUP_VERSION, kind: 'InferencePool', metadata: { name: POOL, namespace: NS }, spec });
    await env.client.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'vllm-0', namespace: NS, labels: { app: 'vllm-args', [SERVING_LABEL]: 'true' } },
      spec: { containers: [{ name: 'vllm', image: 'vllm/vllm-openai:v0.33.0' }] },
    });
    await env.client.request('PATCH', `/api/v1/namespaces/${NS}/pods/vllm-0/status`, {
      body: { status: { phase: 'Running', podIP: POD_IP, podIPs: [{ ip: POD_IP }], conditions: [{ type: 'Ready', status: 'True' }] } },
      contentType: 'application/merge-patch+json',
    });

    // What the operator renders for that pool and an accepted InferenceModel named "chat".
    const pool = testPool(spec, { name: POOL, namespace: NS });
    const models = [testModel('chat', { modelName: 'chat', poolRef: { name: POOL }, criticality: 'Critical' })];
    const configMap = buildRouterConfigMap(pool, models);
    container = buildRouterDeployment(pool, { defaultImage: 'kvroute:test' }).spec!.template.spec!.containers.find(
      (c) => c.name === 'router',
    )!;
    fs.writeFileSync(path.join(dir, 'router.yaml'), configMap.data!['router.yaml']!);

    const rewrites: Record<string, string> = {
      [`--grpc-port=${ROUTER_PORTS.grpc}`]: '--grpc-port=0',
      [`--grpc-health-port=${ROUTER_PORTS.health}`]: '--grpc-health-port=0',
      [`--metrics-port=${ROUTER_PORTS.metrics}`]: '--metrics-port=0',
      [`--config-file=${CONFIG_DIR}/router.yaml`]: `--config-file=${path.join(dir, 'router.yaml')}`,
    };
    const rendered = container.args!;
    // Every rewrite applies (the rendered line has these exact flags), and nothing else is touched.
    expect(Object.keys(rewrites).filter((a) => !rendered.includes(a))).toEqual([]);
    const args = [...rendered.map((a) => rewrites[a] ?? a), `--kubeconfig=${env.kubeconfigPath}`];
    const podNamespace = container.env!.find((e) => e.name === 'POD_NAMESPACE')!;
    expect(podNamespace.valueFrom?.fieldRef?.fieldPath).toBe('metadata.namespace');
    router = await spawnKvroute(args, { env: { POD_NAMESPACE: NS }, readyLine: 'router started' });
    routerPorts = {
      grpcPort: portOf(router.ready, 'grpcPort'),
      healthPort: portOf(router.ready, 'healthPort'),
      metricsPort: portOf(router.ready, 'metricsPort'),
    };

    envoy = await startEnvoy({
      binary: envoyBinary(),
      config: envoyGatewayConfig({ listenPort: 0, adminPort: 0, eppPort: routerPorts.grpcPort, eppTls: true, failureModeAllow: false }),
      log: silentLogger,
      concurrency: 1,
    });
  }, 180_000);

  afterAll(async () => {
    await envoy?.close();
    await router?.stop();
    await sim?.stop();
    await env?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it("answers the rendered probes: live, and ready with the pool's Ready pod as its one endpoint", async () => {
    const readiness = container.readinessProbe!.grpc!;
    const liveness = container.livenessProbe!.grpc!;
    expect([readiness.port, liveness.port]).toEqual([ROUTER_PORTS.health, ROUTER_PORTS.health]);
    expect(await healthCheck(routerPorts.healthPort, liveness.service!)).toBe('SERVING');
    await until(async () => (await healthCheck(routerPorts.healthPort, readiness.service!)) === 'SERVING', {
      message: 'readiness SERVING',
      timeoutMs: 20_000,
    });
    const metrics = await (await fetch(`http://127.0.0.1:${routerPorts.metricsPort}/metrics`)).text();
    expect(metricValue(metrics, 'kvroute_router_ready_endpoints')).toBe(1);
  });

  it('routes through Envoy with the rendered config in force: the base model, the InferenceModel and session affinity', async () => {
    const ask = (model: string) =>
      fetch(`http://127.0.0.1:${envoy.listenPort}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model, prompt: 'Which pod answers?', max_tokens: 2 }),
      });
    await until(async () => (await healthCheck(routerPorts.healthPort, 'readiness')) === 'SERVING', {
      message: 'readiness SERVING',
      timeoutMs: 20_000,
    });

    // --model: the pool's served model is routed to the pod found through --pool-name.
    const base = await ask(SERVED);
    expect(base.status).toBe(200);
    expect(base.headers.get('x-inference-pod')).toBe(POD_IP);
    // router.yaml's session-affinity-scorer (the pool enables it) stamps every response.
    expect(Buffer.from(base.headers.get('x-session-token') ?? '', 'base64').toString()).toBe(`${POD_IP}:${simPort}`);

    // router.yaml's models: "chat" is rewritten to its target, the served model, which the pod serves.
    const chat = await ask('chat');
    expect(chat.status).toBe(200);
    expect(((await chat.json()) as { model: string }).model).toBe(SERVED);

    // A model neither --model nor router.yaml names is refused by the router.
    const unknown = await ask('not-a-model');
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('x-llm-d-request-dropped-reason')).toBe('model-not-found');
  });
});
