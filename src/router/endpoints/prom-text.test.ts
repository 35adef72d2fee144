import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { parseEngineMetrics } from './prom-text.ts';

const M = 'meta-llama/Llama-3.1-8B-Instruct';

// The shape vLLM 0.11 serves with two data-parallel engines and LoRA enabled (prometheus_client output).
const VLLM_DP2 = `# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="${M}"} 3.0
vllm:num_requests_running{engine="1",model_name="${M}"} 2.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="${M}"} 4.0
vllm:num_requests_waiting{engine="1",model_name="${M}"} 1.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="${M}"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="${M}"} 0.5
# HELP vllm:lora_requests_info Running stats on lora requests.
# TYPE vllm:lora_requests_info gauge
vllm:lora_requests_info{max_lora="4",running_lora_adapters="old-a",waiting_lora_adapters=""} 1.7000000e+09
vllm:lora_requests_info{max_lora="4",running_lora_adapters="sql-lora,chat-lora",waiting_lora_adapters="tool-lora"} 1.7000012e+09
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="${M}"} 0.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="${M}"} 12.5
vllm:cache_config_info{block_size="16",cache_dtype="auto",enable_prefix_caching="True",engine="0"} 1.0
`;

describe('parseEngineMetrics', () => {
  it('sums queue counts and takes the fullest KV cache over the label sets of several engines', () => {
    const r = parseEngineMetrics(VLLM_DP2);
    expect(r.malformedLines).toBe(0);
    expect(r.metrics).toMatchObject({ waitingRequests: 5, runningRequests: 5, kvCacheUsage: 0.5 });
  });

  it('reads LoRA adapters from the lora_requests_info sample with the latest timestamp value', () => {
    const r = parseEngineMetrics(VLLM_DP2);
    expect(r.metrics).toMatchObject({ runningLoras: ['sql-lora', 'chat-lora'], waitingLoras: ['tool-lora'], maxLoras: 4 });
  });

  it('reports no adapters when the server has LoRA disabled', () => {
    const r = parseEngineMetrics('vllm:num_requests_waiting 0\nvllm:kv_cache_usage_perc 0\n');
    expect(r.metrics).toEqual({ waitingRequests: 0, runningRequests: 0, kvCacheUsage: 0, runningLoras: [], waitingLoras: [], maxLoras: 0 });
  });

  it('falls back to vllm:gpu_cache_usage_perc for vLLM before 0.10, preferring kv_cache_usage_perc when both exist', () => {
    const old =
      'vllm:num_requests_waiting{model_name="m"} 2\nvllm:num_requests_running{model_name="m"} 1\nvllm:gpu_cache_usage_perc{model_name="m"} 0.75\n';
    expect(parseEngineMetrics(old).metrics).toMatchObject({ waitingRequests: 2, runningRequests: 1, kvCacheUsage: 0.75 });
    const both = 'vllm:gpu_cache_usage_perc 0.9\nvllm:kv_cache_usage_perc 0.1\nvllm:num_requests_waiting 0\n';
    expect(parseEngineMetrics(both).metrics?.kvCacheUsage).toBe(0.1);
  });

  it("reads SGLang's queue, running and token-usage gauges when there are no vLLM ones", () => {
    const text = [
      '# TYPE sglang:num_queue_reqs gauge',
      'sglang:num_queue_reqs{model_name="qwen",tp_rank="0"} 7.0',
      'sglang:num_running_reqs{model_name="qwen",tp_rank="0"} 12.0',
      'sglang:token_usage{model_name="qwen",tp_rank="0"} 0.62',
      'sglang:gen_throughput{model_name="qwen"} 1234.5',
    ].join('\n');
    expect(parseEngineMetrics(text).metrics).toMatchObject({ waitingRequests: 7, runningRequests: 12, kvCacheUsage: 0.62 });
  });

  it("returns no metrics and names what is missing for a page that is not an engine's", () => {
    const r = parseEngineMetrics('# HELP process_cpu_seconds_total x\nprocess_cpu_seconds_total 1.5\nvllm:num_requests_running 2\n');
    expect(r.metrics).toBeNull();
    expect(r.missing.join(' | ')).toMatch(/vllm:num_requests_waiting.*\|.*vllm:kv_cache_usage_perc/);
  });

  it('skips and counts malformed lines of needed metrics without throwing, keeping the good ones', () => {
    const text = [
      'vllm:num_requests_waiting{engine="0" 3', // unclosed labels
      'vllm:num_requests_waiting{engine="1"} three', // bad value
      'vllm:num_requests_waiting{engine="2"}4', // no space before the value
      'vllm:num_requests_waiting{engine=3} 4', // unquoted label value
      'vllm:num_requests_waiting{engine="4"} 6',
      'vllm:kv_cache_usage_perc',
      'vllm:kv_cache_usage_perc 0.4',
      'vllm:lora_requests_info 1.7e9', // lora info without its labels
      'some_other_metric{{{ garbage', // not needed: not even looked at
    ].join('\n');
    const r = parseEngineMetrics(text);
    expect(r.malformedLines).toBe(6);
    expect(r.metrics).toMatchObject({ waitingRequests: 6, kvCacheUsage: 0.4, runningLoras: [] });
  });

  it('matches whole metric names only, so longer names sharing a prefix are ignored', () => {
    const text =
      'vllm:num_requests_waiting_by_reason{reason="capacity"} 9\nvllm:num_requests_waiting 1\nvllm:kv_cache_usage_perc_max 1\nvllm:kv_cache_usage_perc 0.2\n';
    expect(parseEngineMetrics(text).metrics).toMatchObject({ waitingRequests: 1, kvCacheUsage: 0.2 });
  });

  it('handles escaped quotes and braces in label values, timestamps, exponents, CRLF endings and NaN samples', () => {
    const text = [
      'vllm:num_requests_waiting{model_name="we\\"ird}name",engine="0"} 2e0 1700000000000',
      'vllm:num_requests_waiting{model_name="other",engine="0"} NaN',
      'vllm:kv_cache_usage_perc{model_name="a\\\\b"} 3.5E-1',
      'vllm:lora_requests_info{max_lora="2",running_lora_adapters="a\\"b, c ,",waiting_lora_adapters=""} 5',
      '',
    ].join('\r\n');
    const r = parseEngineMetrics(text);
    expect(r.malformedLines).toBe(0);
    expect(r.metrics).toMatchObject({ waitingRequests: 2, kvCacheUsage: 0.35, runningLoras: ['a"b', 'c'], maxLoras: 2 });
  });

  it('clamps KV usage into 0..1', () => {
    expect(parseEngineMetrics('vllm:num_requests_waiting 0\nvllm:kv_cache_usage_perc 1.3\n').metrics?.kvCacheUsage).toBe(1);
  });

  it('never throws, whatever the page holds', () => {
    const fragments = fc.constantFrom(
      'vllm:num_requests_waiting',
      'vllm:lora_requests_info',
      'vllm:kv_cache_usage_perc',
      '{',
      '}',
      '"',
      '\\',
      '=',
      ',',
      ' ',
      '\n',
      '1',
      'NaN',
      'x',
    );
    fc.assert(
      fc.property(fc.array(fc.oneof(fragments, fc.string()), { maxLength: 60 }), (parts) => {
        const r = parseEngineMetrics(parts.join(''));
        expect(r.malformedLines).toBeGreaterThanOrEqual(0);
      }),
      { numRuns: 500 },
    );
  });
});
