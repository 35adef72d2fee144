import { describe, expect, it } from '@jest/globals';
import { STRATEGY_CONFIGS, parseEndpointPickerConfig } from '../api/endpoint-picker-config.ts';
import { STRATEGY_ORDER, describeArrivals, maxModelLenFor, parseStrategies, strategyConfigYaml } from './harness.ts';
import type { Workload } from './workloads/types.ts';

const workload = (lengths: Array<[number, number]>): Workload => ({
  name: 'w',
  requests: lengths.map(([prompt, maxTokens]) => ({ tMs: 0, model: 'm', tokens: new Array<number>(prompt).fill(1000), maxTokens })),
});

describe('parseStrategies', () => {
  it('keeps the order given and rejects unknown or repeated names, naming them', () => {
    expect(parseStrategies('kvroute, round-robin')).toEqual(['kvroute', 'round-robin']);
    expect(parseStrategies(STRATEGY_ORDER.join(','))).toEqual(STRATEGY_ORDER);
    expect(() => parseStrategies('kvroute,fastest')).toThrow('--strategies: unknown strategy "fastest"');
    expect(() => parseStrategies('load,load')).toThrow('"load" is listed twice');
    expect(() => parseStrategies(' , ')).toThrow('expected a comma-separated list');
  });
});

describe('strategyConfigYaml', () => {
  it('is a router config file that parses back to the strategy', () => {
    for (const name of STRATEGY_ORDER) {
      expect(parseEndpointPickerConfig(strategyConfigYaml(name), name)).toEqual(STRATEGY_CONFIGS[name]);
    }
  });
});

describe('maxModelLenFor', () => {
  it("fits the longest request's prompt and max_tokens, and never drops below vLLM's default", () => {
    expect(maxModelLenFor(workload([[1700, 16]]), 800, 16)).toBe(799 * 16);
    expect(
      maxModelLenFor(
        workload([
          [40_000, 10],
          [100, 5],
        ]),
        700_000,
        16,
      ),
    ).toBe(40_010);
    expect(maxModelLenFor(workload([[100, 10]]), 700_000, 16)).toBe(32_768);
  });

  it('names --kv-blocks and the size needed when a request cannot fit a pod', () => {
    expect(() => maxModelLenFor(workload([[2000, 16]]), 100, 16)).toThrow(
      "--kv-blocks 100: a pod's cache holds 1584 tokens but the workload's longest request needs 2016 (prompt + max_tokens); raise --kv-blocks to at least 127 or cut prompts with --max-input-tokens",
    );
  });
});

describe('describeArrivals', () => {
  it('names the arrival process for the report', () => {
    expect(describeArrivals({ kind: 'closed', concurrency: 4, rampUp: true })).toBe('closed loop, 4 clients joining one at a time');
    expect(describeArrivals({ kind: 'poisson', ratePerS: 2.5, seed: 1 })).toBe('Poisson, 2.5 req/s');
    expect(describeArrivals({ kind: 'trace', speedup: 4 })).toBe('trace timestamps / 4');
  });
});
