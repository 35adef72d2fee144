import { describe, expect, it } from '@jest/globals';
import { sumSamples } from './prometheus.ts';

const page = `# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="m"} 1488
vllm:prefix_cache_hits_total{engine="1",model_name="m"} 12
vllm:prefix_cache_hits_total_created{engine="0",model_name="m"} 1.7e9
vllm:prefix_cache_queries_total 3400
vllm:prefix_cache_queries_total_bogus 5
vllm:num_requests_running{model_name="m"} NaN
`;

describe('sumSamples', () => {
  it('sums a counter over its label sets and ignores metrics that only share its prefix', () => {
    expect(sumSamples(page, 'vllm:prefix_cache_hits_total')).toBe(1500);
    expect(sumSamples(page, 'vllm:prefix_cache_queries_total')).toBe(3400);
  });

  it('returns null for a metric the page lacks or has no number for', () => {
    expect(sumSamples(page, 'vllm:prefix_cache')).toBeNull();
    expect(sumSamples(page, 'vllm:num_requests_running')).toBeNull();
    expect(sumSamples('', 'x')).toBeNull();
  });

  it('reads label values containing braces up to the last one', () => {
    expect(sumSamples('m{a="}{"} 2\nm 3\n', 'm')).toBe(5);
  });
});
