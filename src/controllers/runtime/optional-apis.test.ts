import { describe, expect, it } from '@jest/globals';
import type { KubernetesObject } from '@kubernetes/client-node';
import { createLogger } from '../../common/log.ts';
import { KubeApiError } from '../../common/kube/kube-client.ts';
import { manualClock } from '../testing/clock.ts';
import { ENVOY_FILTER_CRD, GATEWAY_INFERENCE_POOL_CRD, fakeCluster } from '../testing/cluster.ts';
import type { FakeKube } from '../testing/fake-kube.ts';
import {
  ENVOY_FILTER_API,
  GIE_INFERENCE_POOL_API,
  OptionalApis,
  SERVICE_MONITOR_API,
  apiName,
  staticServedApis,
  type ApiKind,
} from './optional-apis.ts';
import { OptionalInformer } from './optional-informer.ts';

/** Lets the fake's promise chains run (they resolve in microtasks, no timers). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

function capture() {
  const lines: { level: string; msg: string; api?: string }[] = [];
  const log = createLogger({ level: 'debug', write: (l) => lines.push(JSON.parse(l) as { level: string; msg: string }) });
  return { log, lines };
}

const discoveries = (kube: FakeKube, api: ApiKind) => kube.requests.filter((r) => r.path === `/apis/${api.group}/${api.version}`).length;
const crdPath = (crd: { metadata: { name: string } }) => `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`;

describe('OptionalApis', () => {
  it('answers from discovery: a kind is served once its CRD exists, and kvroute-unrelated kinds are not', async () => {
    const kube = await fakeCluster({ crds: [GATEWAY_INFERENCE_POOL_CRD] });
    const apis = new OptionalApis({ client: kube, log: capture().log, clock: manualClock() });
    expect(apis.isServed(GIE_INFERENCE_POOL_API.group, 'v1', 'InferencePool')).toBe(false); // not checked yet
    await apis.start();
    expect(apis.isServed(GIE_INFERENCE_POOL_API.group, 'v1', 'InferencePool')).toBe(true);
    expect(apis.isServed(ENVOY_FILTER_API.group, 'v1alpha3', 'EnvoyFilter')).toBe(false);
    expect(apis.isServed(SERVICE_MONITOR_API.group, 'v1', 'ServiceMonitor')).toBe(false);
    expect(apis.isServed(GIE_INFERENCE_POOL_API.group, 'v1alpha2', 'InferencePool')).toBe(false);
    apis.stop();
  });

  it('re-checks an absent API with backoff from 5 s doubling to a 5 min cap, and logs one line for it', async () => {
    const kube = await fakeCluster();
    const clock = manualClock();
    const { log, lines } = capture();
    const apis = new OptionalApis({ client: kube, apis: [ENVOY_FILTER_API], log, clock });
    await apis.start();
    expect(discoveries(kube, ENVOY_FILTER_API)).toBe(1);
    const at: number[] = [];
    for (let t = 0; t <= 20 * 60_000; t += 1000) {
      const before = discoveries(kube, ENVOY_FILTER_API);
      clock.advance(1000);
      await settle();
      if (discoveries(kube, ENVOY_FILTER_API) > before) at.push(clock.now());
    }
    const gaps = at.map((t, i) => t - (i === 0 ? 0 : at[i - 1]!));
    expect(gaps.slice(0, 8)).toEqual([5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000]);
    expect(lines.filter((l) => l.level !== 'debug')).toEqual([
      expect.objectContaining({ level: 'info', msg: expect.stringContaining('not served'), api: apiName(ENVOY_FILTER_API) }),
    ]);
    apis.stop();
    expect(clock.pending).toBe(0);
  });

  it('notices an API appearing at the next re-check, or at once when told its CRD changed, and tells listeners', async () => {
    const kube = await fakeCluster();
    const clock = manualClock();
    const apis = new OptionalApis({ client: kube, apis: [ENVOY_FILTER_API, GIE_INFERENCE_POOL_API], log: capture().log, clock });
    const changes: string[] = [];
    apis.onChange((api, served) => changes.push(`${api.kind}=${served}`));
    await apis.start();
    expect(changes).toEqual([]); // absent at the first answer: isServed() already said false

    await kube.create(ENVOY_FILTER_CRD);
    expect(apis.isServed('networking.istio.io', 'v1alpha3', 'EnvoyFilter')).toBe(false);
    clock.advance(5_000);
    await settle();
    expect(apis.isServed('networking.istio.io', 'v1alpha3', 'EnvoyFilter')).toBe(true);

    await kube.create(GATEWAY_INFERENCE_POOL_CRD);
    apis.recheck(GIE_INFERENCE_POOL_API);
    await settle();
    expect(apis.isServed('inference.networking.k8s.io', 'v1', 'InferencePool')).toBe(true);

    await kube.delete(crdPath(ENVOY_FILTER_CRD));
    apis.recheck(ENVOY_FILTER_API);
    await settle();
    expect(apis.isServed('networking.istio.io', 'v1alpha3', 'EnvoyFilter')).toBe(false);
    expect(changes).toEqual(['EnvoyFilter=true', 'InferencePool=true', 'EnvoyFilter=false']);
    apis.stop();
  });

  it('follows a hint that finds the API still absent (discovery lags the CRD) with a re-check after 1 s, doubling from there', async () => {
    const kube = await fakeCluster();
    const clock = manualClock();
    const apis = new OptionalApis({ client: kube, apis: [ENVOY_FILTER_API], log: capture().log, clock });
    await apis.start();
    clock.advance(2_000);
    apis.recheck(ENVOY_FILTER_API);
    await settle();
    const checksAt: number[] = [];
    for (let t = 0; t < 8_000; t += 500) {
      const before = discoveries(kube, ENVOY_FILTER_API);
      clock.advance(500);
      await settle();
      if (discoveries(kube, ENVOY_FILTER_API) > before) checksAt.push(clock.now() - 2_000);
    }
    expect(checksAt).toEqual([1_000, 3_000, 7_000]);
    apis.stop();
  });

  it('checks a served API again at the longest interval and notices its removal', async () => {
    const kube = await fakeCluster({ crds: [ENVOY_FILTER_CRD] });
    const clock = manualClock();
    const apis = new OptionalApis({ client: kube, apis: [ENVOY_FILTER_API], log: capture().log, clock });
    await apis.start();
    expect(apis.isServed('networking.istio.io', 'v1alpha3', 'EnvoyFilter')).toBe(true);
    await kube.delete(crdPath(ENVOY_FILTER_CRD));
    clock.advance(299_000);
    await settle();
    expect(apis.isServed('networking.istio.io', 'v1alpha3', 'EnvoyFilter')).toBe(true);
    clock.advance(1_000);
    await settle();
    expect(apis.isServed('networking.istio.io', 'v1alpha3', 'EnvoyFilter')).toBe(false);
    apis.stop();
  });

  it('keeps the last answer when discovery fails for another reason than 404, logging the failure once', async () => {
    const kube = await fakeCluster({ crds: [ENVOY_FILTER_CRD] });
    const clock = manualClock();
    const { log, lines } = capture();
    const apis = new OptionalApis({ client: kube, apis: [ENVOY_FILTER_API], log, clock, maxDelayMs: 10_000 });
    await apis.start();
    const heal = kube.react((r) =>
      r.path.startsWith('/apis/networking.istio.io/') ? new KubeApiError(503, 'ServiceUnavailable', 'etcd is busy') : undefined,
    );
    for (let i = 0; i < 5; i++) {
      clock.advance(10_000);
      await settle();
    }
    expect(discoveries(kube, ENVOY_FILTER_API)).toBe(6);
    expect(apis.isServed('networking.istio.io', 'v1alpha3', 'EnvoyFilter')).toBe(true);
    expect(lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual([
      'API discovery failed; keeping the last answer and retrying with backoff',
    ]);
    heal();
    clock.advance(10_000);
    await settle();
    expect(lines.at(-1)).toMatchObject({ level: 'info', msg: 'API discovery answers again' });
    apis.stop();
  });

  it('staticServedApis answers for the kinds it was given only', () => {
    const apis = staticServedApis([GIE_INFERENCE_POOL_API]);
    expect(apis.isServed('inference.networking.k8s.io', 'v1', 'InferencePool')).toBe(true);
    expect(apis.isServed('networking.istio.io', 'v1alpha3', 'EnvoyFilter')).toBe(false);
  });
});

describe('OptionalInformer', () => {
  const filter = (name: string) => ({
    apiVersion: 'networking.istio.io/v1alpha3',
    kind: 'EnvoyFilter',
    metadata: { name, namespace: 'istio-system' },
    spec: {},
  });

  it('watches only while the API is served: starts when it appears, reports its objects deleted when it goes', async () => {
    const kube = await fakeCluster({ namespaces: ['istio-system'] });
    const clock = manualClock();
    const { log } = capture();
    const apis = new OptionalApis({ client: kube, apis: [ENVOY_FILTER_API], log, clock });
    await apis.start();
    let created = 0;
    const informer = new OptionalInformer<KubernetesObject>({
      name: 'envoyfilters',
      api: ENVOY_FILTER_API,
      apis,
      log,
      create: () => {
        created += 1;
        return kube.informer({ name: 'envoyfilters', path: '/apis/networking.istio.io/v1alpha3/envoyfilters' });
      },
    });
    const events: string[] = [];
    informer.on((event, obj) => events.push(`${event} ${obj.metadata?.name}`));
    await informer.start();
    expect(informer.running).toBe(false);
    expect(informer.synced).toBe(false);
    expect(informer.list()).toEqual([]);
    // The absent API is not listed or watched, so nothing fails in a loop.
    const listsWhileAbsent = kube.requests.filter((r) => r.path.startsWith('/apis/networking.istio.io/v1alpha3/envoyfilters')).length;
    expect(listsWhileAbsent).toBe(0);

    await kube.create(ENVOY_FILTER_CRD);
    await kube.create(filter('a'));
    apis.recheck(ENVOY_FILTER_API);
    await settle();
    expect(informer.running).toBe(true);
    expect(informer.synced).toBe(true);
    expect(informer.get('a', 'istio-system')?.metadata?.name).toBe('a');
    await kube.create(filter('b'));
    expect(events).toEqual(['add a', 'add b']);

    await kube.delete(crdPath(ENVOY_FILTER_CRD));
    apis.recheck(ENVOY_FILTER_API);
    await settle();
    expect(informer.running).toBe(false);
    expect(events.slice(2).sort()).toEqual(['delete a', 'delete b']);

    await kube.create(ENVOY_FILTER_CRD);
    apis.recheck(ENVOY_FILTER_API);
    await settle();
    expect(created).toBe(2);
    expect(informer.synced).toBe(true);
    await informer.stop();
    apis.stop();
  });
});
