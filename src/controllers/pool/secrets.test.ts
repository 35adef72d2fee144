// Secrets stay in Secrets: a pool that names an HF token Secret and Secret-backed env vars is reconciled
// against the in-memory API server holding those Secrets, and no value (plain or base64) appears in any
// object the operator wrote, no ConfigMap names a Secret, every Secret-backed env var is a secretKeyRef,
// and the operator never asked for a Secret.

import { afterEach, describe, expect, it } from '@jest/globals';
import type { V1Container, V1Deployment } from '@kubernetes/client-node';
import { GROUP_VERSION } from '../../api/meta.ts';
import { silentLogger } from '../../common/log.ts';
import {
  DESTINATION_RULE_CRD,
  ENVOY_FILTER_CRD,
  GATEWAY_INFERENCE_POOL_CRD,
  fakeCluster,
  servedApis,
  startPoolCaches,
} from '../testing/cluster.ts';
import { testPool } from '../testing.ts';
import { until } from '../../../test/support/until.ts';
import { desiredPoolObjects } from './desired.ts';
import { PoolReconciler } from './reconciler.ts';

const TOKEN = 'hf_SENTINEL_token_value_0123456789';
const PASSWORD = 'db-SENTINEL-password-9876543210';
const SPEC = {
  model: { name: 'meta-llama/Llama-3.1-8B-Instruct', tokenizer: 'npm:llama3_1' },
  modelServer: {
    image: 'vllm/vllm-openai:v0.33.0',
    hfTokenSecretRef: { name: 'hf', key: 'token' },
    env: [{ name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } }],
  },
  gateway: { envoyFilter: true, workloadSelector: { istio: 'ingressgateway' }, routeNames: ['llama'] },
};

let stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(stops.map((s) => s()));
  stops = [];
});

const containersOf = (d: V1Deployment): V1Container[] => [
  ...(d.spec?.template.spec?.initContainers ?? []),
  ...(d.spec?.template.spec?.containers ?? []),
];

describe('secrets are never rendered into objects the operator writes', () => {
  it('reconciles a pool with Secret references without any Secret value reaching the API server, and never reads a Secret', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'], crds: [ENVOY_FILTER_CRD, DESTINATION_RULE_CRD, GATEWAY_INFERENCE_POOL_CRD] });
    for (const [name, key, value] of [
      ['hf', 'token', TOKEN],
      ['db', 'password', PASSWORD],
    ] as const) {
      await kube.request('POST', '/api/v1/namespaces/ml/secrets', {
        body: {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name, namespace: 'ml' },
          data: { [key]: Buffer.from(value).toString('base64') },
        },
      });
    }
    const caches = await startPoolCaches(kube);
    stops.push(caches.stop);
    const reconciler = new PoolReconciler({
      client: kube,
      caches,
      log: silentLogger,
      desired: { defaultImage: 'kvroute:test', clusterDomain: 'cluster.local' },
      apis: servedApis(kube),
      now: () => new Date('2026-01-01T00:00:00Z'),
    });
    await kube.create({ apiVersion: GROUP_VERSION, kind: 'InferencePool', metadata: { name: 'llama', namespace: 'ml' }, spec: SPEC });
    await until(() => caches.pools.get('llama', 'ml'), { message: 'the pool in the cache' });
    await reconciler.reconcile('ml/llama');

    const written = kube.requests.filter((r) => r.method !== 'GET');
    expect(written.length).toBeGreaterThan(5);
    // What the operator sent, every body; and what the API server now holds besides the Secrets themselves.
    const sent = JSON.stringify(written.filter((r) => !r.path.includes('/secrets')).map((r) => r.body));
    const paths = [
      '/api/v1/namespaces/ml/configmaps',
      '/api/v1/namespaces/ml/services',
      '/api/v1/namespaces/ml/serviceaccounts',
      '/apis/apps/v1/namespaces/ml/deployments',
      '/apis/rbac.authorization.k8s.io/v1/namespaces/ml/roles',
      '/apis/networking.k8s.io/v1/namespaces/ml/networkpolicies',
      '/apis/networking.istio.io/v1alpha3/namespaces/ml/envoyfilters',
      '/apis/networking.istio.io/v1/namespaces/ml/destinationrules',
    ];
    const stored = JSON.stringify(await Promise.all(paths.map((p) => kube.list(p))));
    expect(stored).toContain('llama-router'); // the listing found the pool's objects
    for (const text of [sent, stored]) {
      for (const value of [TOKEN, PASSWORD]) {
        expect(text).not.toContain(value);
        expect(text).not.toContain(Buffer.from(value).toString('base64'));
      }
    }
    expect(kube.requests.filter((r) => r.path.includes('/secrets') && r.method === 'GET')).toEqual([]);
  });

  it('passes Secret-backed env vars as secretKeyRef only, and names no Secret in any ConfigMap', () => {
    const pool = testPool(SPEC);
    const { apply } = desiredPoolObjects(pool, [], {
      defaultImage: 'kvroute:test',
      clusterDomain: 'cluster.local',
      apis: { isServed: () => true },
    });
    expect(apply.some((o) => o.kind === 'Secret')).toBe(false);
    const deployments = apply.filter((o) => o.kind === 'Deployment') as unknown as V1Deployment[];
    const env = deployments.flatMap(containersOf).flatMap((c) => c.env ?? []);
    expect(env.find((e) => e.name === 'HF_TOKEN')).toEqual({ name: 'HF_TOKEN', valueFrom: { secretKeyRef: { name: 'hf', key: 'token' } } });
    expect(env.find((e) => e.name === 'DB_PASSWORD')).toEqual({
      name: 'DB_PASSWORD',
      valueFrom: { secretKeyRef: { name: 'db', key: 'password' } },
    });
    // No env literal carries a credential-looking name: those come from Secrets or not at all.
    expect(env.filter((e) => e.value !== undefined && /TOKEN|PASSWORD|SECRET|API_KEY/i.test(e.name))).toEqual([]);
    for (const cm of apply.filter((o) => o.kind === 'ConfigMap')) {
      const data = JSON.stringify((cm as { data?: unknown }).data);
      expect(data).not.toMatch(/secretKeyRef|HF_TOKEN|DB_PASSWORD/);
      expect(data).not.toMatch(/\bhf\b.*\btoken\b/);
    }
  });
});
