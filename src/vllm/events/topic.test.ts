import { describe, it, expect } from '@jest/globals';
import {
  endpointForRank,
  parseSequenceFrame,
  parseTopic,
  parseTopicFrame,
  replayEndpointFromTemplate,
  sequenceFrame,
  TopicError,
} from './topic.ts';

describe('parseTopic', () => {
  it.each([
    ['kv@pod-a@meta-llama/Llama-3.1-8B', 'pod-a', 'meta-llama/Llama-3.1-8B'],
    ['kv@10.0.0.7:8000@Qwen/Qwen3-8B', '10.0.0.7:8000', 'Qwen/Qwen3-8B'],
    ['kv@[fd00::1]:8000@m', '[fd00::1]:8000', 'm'],
    ['kv@pod-a@org/model@rev-2', 'pod-a', 'org/model@rev-2'],
    ['kv@pod-a@@odd', 'pod-a', '@odd'],
  ])('takes the pod id as the middle part and the rest as the model: %s', (topic, podId, model) => {
    expect(parseTopic(topic)).toEqual({ podId, model });
  });

  it.each([
    ['', /does not start with "kv@"/],
    ['kv', /does not start with "kv@"/],
    ['vllm@pod@model', /does not start with "kv@"/],
    ['kv@pod-only', /no "@" after the pod id/],
    ['kv@@model', /empty pod id/],
    ['kv@pod@', /empty model name/],
  ])('rejects %j saying what was expected', (topic, message) => {
    expect(() => parseTopic(topic)).toThrow(TopicError);
    expect(() => parseTopic(topic)).toThrow(message);
  });

  it('rejects a topic frame that is not UTF-8', () => {
    expect(() => parseTopicFrame(Uint8Array.from([0x6b, 0x76, 0x40, 0xff]))).toThrow(/not valid UTF-8/);
  });
});

describe('sequence frames', () => {
  it('round-trips big-endian int64 sequence numbers', () => {
    for (const n of [0, 1, 255, 256, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]) expect(parseSequenceFrame(sequenceFrame(n))).toBe(n);
  });
  it('reads the replay end marker as -1', () => {
    expect(parseSequenceFrame(Buffer.alloc(8, 0xff))).toBe(-1);
  });
  it('rejects frames that are not 8 bytes', () => {
    expect(() => parseSequenceFrame(Buffer.alloc(4))).toThrow(/4 bytes: expected 8/);
  });
  it('rejects negative numbers other than the end marker', () => {
    const f = Buffer.alloc(8);
    f.writeBigInt64BE(-2n);
    expect(() => parseSequenceFrame(f)).toThrow(/out of range/);
  });
});

describe('endpointForRank', () => {
  it('offsets a tcp port by the data-parallel rank as vLLM does', () => {
    expect(endpointForRank('tcp://10.0.0.7:5558', 0)).toBe('tcp://10.0.0.7:5558');
    expect(endpointForRank('tcp://10.0.0.7:5558', 2)).toBe('tcp://10.0.0.7:5560');
    expect(endpointForRank('tcp://[fd00::1]:5558', 1)).toBe('tcp://[fd00::1]:5559');
    expect(endpointForRank('tcp://10.0.0.7:0', 3)).toBe('tcp://10.0.0.7:0');
  });
  it('offsets a wildcard tcp bind the same way', () => {
    expect(endpointForRank('tcp://*:5557', 2)).toBe('tcp://*:5559');
  });
  it('suffixes an inproc name', () => {
    expect(endpointForRank('inproc://replay', 1)).toBe('inproc://replay_dp1');
  });
  it('leaves any endpoint of rank 0 as it is, ipc included', () => {
    expect(endpointForRank('ipc:///tmp/kv', 0)).toBe('ipc:///tmp/kv');
  });
  it('refuses an ipc endpoint for a rank above 0, as vLLM raises', () => {
    expect(() => endpointForRank('ipc:///tmp/kv', 1)).toThrow(
      /"ipc:\/\/\/tmp\/kv" cannot be offset for data-parallel rank 1: expected tcp:\/\/HOST:PORT or inproc:\/\/NAME/,
    );
  });
  it('refuses a tcp endpoint whose port is not a number', () => {
    expect(() => endpointForRank('tcp://10.0.0.7:http', 1)).toThrow(/port "http": expected a number/);
  });
});

describe('replayEndpointFromTemplate', () => {
  it("puts the topic's pod id, or its host without a port, into the template", () => {
    expect(replayEndpointFromTemplate('tcp://{pod}:5558', '10.0.0.7')).toBe('tcp://10.0.0.7:5558');
    expect(replayEndpointFromTemplate('tcp://{host}:5558', '10.0.0.7:8000')).toBe('tcp://10.0.0.7:5558');
    expect(replayEndpointFromTemplate('tcp://{host}:5558', '[fd00::1]:8000')).toBe('tcp://[fd00::1]:5558');
    expect(replayEndpointFromTemplate('tcp://{host}.pods.local:5558', 'vllm-0')).toBe('tcp://vllm-0.pods.local:5558');
  });
});
