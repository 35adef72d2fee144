import { describe, expect, it } from '@jest/globals';
import type { V1Pod } from '@kubernetes/client-node';
import { until } from '../../test/support/until.ts';
import { silentLogger } from '../common/log.ts';
import { ServingPods } from './serving-pods.ts';
import { fakeCluster } from './testing/cluster.ts';
import type { FakeKube } from './testing/fake-kube.ts';

const DEFAULT = 'llm-d.ai/inferenceServing=true';
const CHART = 'llm-d.ai/inference-serving=true';
const pod = (kube: FakeKube, name: string, labels: Record<string, string>) =>
  kube.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'ml', labels }, spec: {} });
const names = (pods: readonly V1Pod[]) => pods.map((p) => p.metadata!.name).sort();

describe('ServingPods', () => {
  it('watches the default serving label, adds a watch per label pools name, lists a pod with two labels once, and stops unused watches', async () => {
    const kube = await fakeCluster({ namespaces: ['ml'] });
    const created: string[] = [];
    const pods = new ServingPods({
      defaultSelector: DEFAULT,
      create: (labelSelector) => {
        created.push(labelSelector);
        return kube.informer<V1Pod>({ name: `pods(${labelSelector})`, path: '/api/v1/pods', labelSelector });
      },
      log: silentLogger,
    });
    const seen: string[] = [];
    pods.on((event, p) => seen.push(`${event} ${p.metadata!.name}`));
    await pods.start();
    await pod(kube, 'llmd', { 'llm-d.ai/inferenceServing': 'true' });
    await pod(kube, 'chart', { 'llm-d.ai/inference-serving': 'true' });
    await pod(kube, 'both', { 'llm-d.ai/inferenceServing': 'true', 'llm-d.ai/inference-serving': 'true' });
    await pod(kube, 'none', { app: 'x' });
    expect(names(pods.list())).toEqual(['both', 'llmd']);

    pods.retain([CHART, CHART]);
    expect(pods.selectors).toEqual([CHART, DEFAULT]);
    await until(() => pods.synced, { message: 'the new watch listed' });
    expect(names(pods.list('ml'))).toEqual(['both', 'chart', 'llmd']);
    expect(pods.get('chart', 'ml')?.metadata?.name).toBe('chart');

    pods.retain([]);
    expect(pods.selectors).toEqual([DEFAULT]);
    expect(names(pods.list())).toEqual(['both', 'llmd']);
    expect(created).toEqual([DEFAULT, CHART]);
    expect(seen).toContain('add chart');
    await pods.stop();
  });
});
