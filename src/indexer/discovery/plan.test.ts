import { describe, it, expect } from '@jest/globals';
import type { V1Pod } from '@kubernetes/client-node';
import {
  observePod,
  planConnections,
  podEndpoint,
  podLabelSelector,
  podRankEndpoints,
  trackPod,
  type PodObservation,
  type TrackedPod,
} from './plan.ts';

const GRACE = 10_000;

function pod(name: string, ip: string | undefined, ready: boolean, extra: { deleting?: boolean } = {}): V1Pod {
  return {
    metadata: { name, namespace: 'ml', uid: `uid-${name}`, ...(extra.deleting ? { deletionTimestamp: new Date(0) } : {}) },
    status: {
      ...(ip ? { podIP: ip } : {}),
      conditions: [
        { type: 'PodScheduled', status: 'True' },
        { type: 'Ready', status: ready ? 'True' : 'False' },
      ],
    },
  };
}

/** Feeds observations in order to one pod's tracked state. */
function track(steps: Array<[PodObservation, number]>): TrackedPod {
  let t: TrackedPod | undefined;
  for (const [seen, now] of steps) t = trackPod(t, seen, now);
  return t!;
}

describe('observePod', () => {
  it('reads the IP, the Ready condition and deletion from a pod object', () => {
    expect(observePod(pod('a', '10.0.0.5', true))).toEqual({ key: 'uid-a', ip: '10.0.0.5', ready: true, terminating: false });
    expect(observePod(pod('b', undefined, false, { deleting: true }))).toEqual({ key: 'uid-b', ip: null, ready: false, terminating: true });
    expect(observePod({ metadata: { name: 'c', namespace: 'ml' } })).toEqual({ key: 'ml/c', ip: null, ready: false, terminating: false });
  });
});

describe('planConnections', () => {
  const ready = (ip: string) => observePod(pod(ip, ip, true));
  const notReady = (ip: string, name = ip) => observePod(pod(name, ip, false));

  it('connects Ready pods with an IP and nothing else', () => {
    const pods = [track([[ready('10.0.0.1'), 0]]), track([[notReady('10.0.0.2'), 0]]), track([[observePod(pod('p', undefined, true)), 0]])];
    expect(planConnections(pods, new Set(), 0, GRACE)).toEqual({ connect: ['10.0.0.1'], disconnect: [], recheckAt: null });
  });

  it('keeps a pod that stops being Ready through its grace, then drops it as not_ready', () => {
    const flapped = track([
      [ready('10.0.0.1'), 0],
      [notReady('10.0.0.1', '10.0.0.1'), 1_000],
    ]);
    const connected = new Set(['10.0.0.1']);
    expect(planConnections([flapped], connected, 5_000, GRACE)).toEqual({ connect: [], disconnect: [], recheckAt: 11_000 });
    expect(planConnections([flapped], connected, 11_000, GRACE)).toEqual({
      connect: [],
      disconnect: [{ ip: '10.0.0.1', reason: 'not_ready' }],
      recheckAt: null,
    });
  });

  it('restarts the grace only when the pod was Ready again in between', () => {
    const steps: Array<[PodObservation, number]> = [
      [ready('10.0.0.1'), 0],
      [notReady('10.0.0.1', '10.0.0.1'), 1_000],
      [notReady('10.0.0.1', '10.0.0.1'), 8_000],
    ];
    expect(track(steps).notReadySince).toBe(1_000);
    expect(track([...steps, [ready('10.0.0.1'), 9_000], [notReady('10.0.0.1', '10.0.0.1'), 9_500]]).notReadySince).toBe(9_500);
  });

  it('drops a pod at once with a zero grace', () => {
    const flapped = track([
      [ready('10.0.0.1'), 0],
      [notReady('10.0.0.1', '10.0.0.1'), 1_000],
    ]);
    expect(planConnections([flapped], new Set(['10.0.0.1']), 1_000, 0).disconnect).toEqual([{ ip: '10.0.0.1', reason: 'not_ready' }]);
  });

  it('treats a new IP as a new pod: the old one is dropped as gone, the new one waits for Ready', () => {
    const uid = 'same-pod';
    const seen = (ip: string, isReady: boolean): PodObservation => ({ key: uid, ip, ready: isReady, terminating: false });
    const moved = track([
      [seen('10.0.0.1', true), 0],
      [seen('10.0.0.9', false), 1_000],
    ]);
    expect(moved.notReadySince).toBeNull();
    expect(planConnections([moved], new Set(['10.0.0.1']), 1_000, GRACE)).toEqual({
      connect: [],
      disconnect: [{ ip: '10.0.0.1', reason: 'gone' }],
      recheckAt: null,
    });
    const movedReady = trackPod(moved, seen('10.0.0.9', true), 2_000);
    expect(planConnections([movedReady], new Set(), 2_000, GRACE).connect).toEqual(['10.0.0.9']);
  });

  it('drops a deleted pod as gone and a terminating one at once, even if still Ready', () => {
    const terminating = track([[observePod(pod('t', '10.0.0.3', true, { deleting: true })), 0]]);
    const plan = planConnections([terminating], new Set(['10.0.0.2', '10.0.0.3']), 0, GRACE);
    expect(plan.disconnect).toEqual([
      { ip: '10.0.0.2', reason: 'gone' },
      { ip: '10.0.0.3', reason: 'terminating' },
    ]);
  });

  it('keeps an IP connected while any pod holding it is wanted', () => {
    const old = track([[observePod(pod('old', '10.0.0.4', false)), 0]]);
    const fresh = track([[observePod(pod('new', '10.0.0.4', true)), 0]]);
    expect(planConnections([old, fresh], new Set(['10.0.0.4']), 0, GRACE)).toEqual({ connect: [], disconnect: [], recheckAt: null });
  });
});

describe('podLabelSelector and podEndpoint', () => {
  it('adds the inference-serving label to the pool selector, sorted', () => {
    expect(podLabelSelector({ app: 'vllm', 'inference.kvroute.io/pool': 'llama' })).toBe(
      'app=vllm,inference.kvroute.io/pool=llama,llm-d.ai/inferenceServing=true',
    );
    expect(podLabelSelector({})).toBe('llm-d.ai/inferenceServing=true');
  });

  it("uses the pool's serving label instead of llm-d's default when given one", () => {
    expect(podLabelSelector({ app: 'vllm' }, { key: 'llm-d.ai/inference-serving', value: 'yes' })).toBe(
      'app=vllm,llm-d.ai/inference-serving=yes',
    );
  });

  it('brackets IPv6 addresses in tcp endpoints', () => {
    expect(podEndpoint('10.1.2.3', 5557)).toBe('tcp://10.1.2.3:5557');
    expect(podEndpoint('fd00::12', 5558)).toBe('tcp://[fd00::12]:5558');
  });
});

describe('podRankEndpoints', () => {
  it('gives rank 0 alone the configured ports when the pods run one rank', () => {
    expect(podRankEndpoints('10.0.0.1', { port: 5557, replayPort: 5558, dataParallelSize: 1 })).toEqual([
      { rank: 0, endpoint: 'tcp://10.0.0.1:5557', replayEndpoint: 'tcp://10.0.0.1:5558' },
    ]);
  });

  it('offsets both the publisher and the replay port by the rank, as vLLM binds them', () => {
    expect(podRankEndpoints('fd00::7', { port: 5557, replayPort: 5600, dataParallelSize: 3 })).toEqual([
      { rank: 0, endpoint: 'tcp://[fd00::7]:5557', replayEndpoint: 'tcp://[fd00::7]:5600' },
      { rank: 1, endpoint: 'tcp://[fd00::7]:5558', replayEndpoint: 'tcp://[fd00::7]:5601' },
      { rank: 2, endpoint: 'tcp://[fd00::7]:5559', replayEndpoint: 'tcp://[fd00::7]:5602' },
    ]);
  });

  it('leaves every rank without a replay endpoint when the pods have none', () => {
    expect(
      podRankEndpoints('10.0.0.1', { port: 6000, replayPort: null, dataParallelSize: 2 }).map((r) => [r.endpoint, r.replayEndpoint]),
    ).toEqual([
      ['tcp://10.0.0.1:6000', undefined],
      ['tcp://10.0.0.1:6001', undefined],
    ]);
  });
});
