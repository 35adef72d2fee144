import { describe, expect, it } from '@jest/globals';
import { histogramQuantile, parseHistogram, pickCacheAware } from './traffic.ts';
import { buildWorkload, DEFAULT_WORKLOAD } from './workload.ts';

const EXPOSITION = `# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="m",engine="0"} 1
vllm:time_to_first_token_seconds_bucket{le="0.5",model_name="m",engine="0"} 3
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m",engine="0"} 4
vllm:time_to_first_token_seconds_sum{model_name="m",engine="0"} 2.5
vllm:time_to_first_token_seconds_count{model_name="m",engine="0"} 4
vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="m",engine="1"} 0
vllm:time_to_first_token_seconds_bucket{le="0.5",model_name="m",engine="1"} 2
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m",engine="1"} 2
vllm:time_to_first_token_seconds_sum{model_name="m",engine="1"} 0.6
vllm:time_to_first_token_seconds_count{model_name="m",engine="1"} 2
vllm:e2e_request_latency_seconds_sum{model_name="m"} 99
`;

describe('parseHistogram', () => {
  it('sums a histogram over every label set and ignores other metrics', () => {
    const h = parseHistogram(EXPOSITION, 'vllm:time_to_first_token_seconds');
    expect(h.count).toBe(6);
    expect(h.sum).toBeCloseTo(3.1);
    expect(h.buckets).toEqual([
      [0.1, 1],
      [0.5, 5],
      [Infinity, 6],
    ]);
  });
});

describe('histogramQuantile', () => {
  it('interpolates inside the bucket that holds the quantile', () => {
    const h = parseHistogram(EXPOSITION, 'vllm:time_to_first_token_seconds');
    // rank 3 of 6 falls in (0.1, 0.5] holding ranks 2..5: half way through it.
    expect(histogramQuantile(h, 0.5)).toBeCloseTo(0.3);
  });
  it('answers the last finite bound when the quantile lies in +Inf', () => {
    const h = parseHistogram(EXPOSITION, 'vllm:time_to_first_token_seconds');
    expect(histogramQuantile(h, 0.99)).toBe(0.5);
  });
  it('answers 0 for an empty histogram', () => {
    expect(histogramQuantile({ sum: 0, count: 0, buckets: [] }, 0.9)).toBe(0);
  });
});

describe('pickCacheAware', () => {
  it('picks the pod with the most cached blocks', () => {
    const inFlight = new Map([['a', 0], ['b', 0], ['c', 0]]);
    expect(pickCacheAware({ b: 12, c: 3 }, inFlight, 2)).toBe('b');
  });
  it('breaks ties by fewest requests in flight', () => {
    const inFlight = new Map([['a', 2], ['b', 1], ['c', 2]]);
    expect(pickCacheAware({}, inFlight, 2)).toBe('b');
  });
  it('skips a warm pod that is more than the load bound above the least-loaded one', () => {
    const inFlight = new Map([['a', 5], ['b', 1], ['c', 2]]);
    expect(pickCacheAware({ a: 40, c: 10 }, inFlight, 2)).toBe('c');
  });
});

describe('buildWorkload', () => {
  it('is deterministic for a seed and grows each conversation by one turn per round', () => {
    const a = buildWorkload(DEFAULT_WORKLOAD);
    const b = buildWorkload(DEFAULT_WORKLOAD);
    expect(a).toEqual(b);
    expect(a).toHaveLength(DEFAULT_WORKLOAD.conversations * DEFAULT_WORKLOAD.turnsPerConversation);
    const conv0 = a.filter((t) => t.conversation === 0);
    expect(conv0.map((t) => t.messages.length)).toEqual([2, 4, 6, 8, 10]);
    expect(conv0[1]!.messages.slice(0, 2)).toEqual(conv0[0]!.messages);
  });
  it('gives conversations of one app the same system prompt and other apps a different one', () => {
    const turns = buildWorkload(DEFAULT_WORKLOAD);
    const system = (c: number) => turns.find((t) => t.conversation === c)!.messages[0]!.content;
    expect(system(0)).toBe(system(DEFAULT_WORKLOAD.apps));
    expect(system(0)).not.toBe(system(1));
  });
});
