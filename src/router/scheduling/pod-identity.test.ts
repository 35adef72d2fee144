import { describe, expect, it } from '@jest/globals';
import { parsePodId, scoresByEndpoint } from './pod-identity.ts';
import { endpoint } from './test-helpers.ts';

describe('pod identity', () => {
  it('classifies ids with a port, without one, and names', () => {
    expect(parsePodId('10.0.0.5:8000')).toEqual({ kind: 'address', ip: '10.0.0.5', port: 8000 });
    expect(parsePodId('[FD00::5]:8000')).toEqual({ kind: 'address', ip: 'fd00::5', port: 8000 });
    expect(parsePodId('10.0.0.5')).toEqual({ kind: 'ip', ip: '10.0.0.5' });
    expect(parsePodId('fd00::5')).toEqual({ kind: 'ip', ip: 'fd00::5' });
    expect(parsePodId('[fd00::5]')).toEqual({ kind: 'ip', ip: 'fd00::5' });
    expect(parsePodId('vllm-0')).toEqual({ kind: 'name', name: 'vllm-0' });
    expect(parsePodId('localhost:8000')).toEqual({ kind: 'name', name: 'localhost:8000' });
    // Not a port: the whole id is a name.
    expect(parsePodId('10.0.0.5:99999')).toEqual({ kind: 'name', name: '10.0.0.5:99999' });
  });

  const pool = [
    endpoint('10.0.0.5:8000', { name: 'vllm-0' }),
    endpoint('10.0.0.5:8001', { name: 'vllm-0' }),
    endpoint('10.0.0.6:8000', { name: 'vllm-1' }),
    endpoint('[fd00::7]:8000', { name: 'vllm-2' }),
  ];

  it('matches ip:port to exactly that endpoint, telling apart servers on one IP', () => {
    expect(scoresByEndpoint({ '10.0.0.5:8001': 4 }, pool)).toEqual(new Map([['10.0.0.5:8001', 4]]));
    expect(scoresByEndpoint({ '10.0.0.6:8001': 4 }, pool)).toEqual(new Map());
    // IPv6 in any spelling of the same address.
    expect(scoresByEndpoint({ '[FD00:0:0::7]:8000': 2 }, pool)).toEqual(new Map([['[fd00::7]:8000', 2]]));
  });

  it("matches an IP without a port to every endpoint on that IP (the operator's kv@$(POD_IP)@model)", () => {
    expect(scoresByEndpoint({ '10.0.0.5': 3 }, pool)).toEqual(
      new Map([
        ['10.0.0.5:8000', 3],
        ['10.0.0.5:8001', 3],
      ]),
    );
    expect(scoresByEndpoint({ 'fd00::7': 1 }, pool)).toEqual(new Map([['[fd00::7]:8000', 1]]));
  });

  it('matches anything else by pod name, or by the whole address in local mode', () => {
    expect(scoresByEndpoint({ 'vllm-1': 5 }, pool)).toEqual(new Map([['10.0.0.6:8000', 5]]));
    const local = [endpoint('localhost:8001'), endpoint('localhost:8002')];
    expect(scoresByEndpoint({ 'localhost:8002': 2 }, local)).toEqual(new Map([['localhost:8002', 2]]));
  });

  it('keeps the highest score when several ids name one endpoint, and drops ids of no candidate', () => {
    expect(scoresByEndpoint({ '10.0.0.5': 2, '10.0.0.5:8000': 6, 'vllm-9': 1, '10.9.9.9:8000': 3 }, pool)).toEqual(
      new Map([
        ['10.0.0.5:8000', 6],
        ['10.0.0.5:8001', 2],
      ]),
    );
  });
});
