import { describe, expect, it } from '@jest/globals';
import { RoundRobin, firstValidEndpoint, parseEndpointList, parseIpEndpoint, resolveDestination } from './destination.ts';

describe('parseIpEndpoint', () => {
  it('accepts IPv4 and bracketed IPv6 literals with a port', () => {
    expect(parseIpEndpoint('10.0.0.7:8000')).toEqual({ host: '10.0.0.7', port: 8000, address: '10.0.0.7:8000' });
    expect(parseIpEndpoint(' [fd00::1]:9000 ')).toEqual({ host: 'fd00::1', port: 9000, address: '[fd00::1]:9000' });
  });

  it('refuses names, missing or out-of-range ports and bare IPv6', () => {
    for (const bad of ['pod-a:8000', '10.0.0.7', '10.0.0.7:0', '10.0.0.7:65536', '10.0.0.7:80x', 'fd00::1:80', '']) {
      expect(parseIpEndpoint(bad)).toBeUndefined();
    }
  });
});

describe('firstValidEndpoint', () => {
  it('takes the first valid entry of a comma list and skips invalid ones', () => {
    expect(firstValidEndpoint('bogus, 10.0.0.8:8000,10.0.0.9:8000')?.address).toBe('10.0.0.8:8000');
    expect(firstValidEndpoint('nope,also-nope')).toBeUndefined();
  });
});

describe('resolveDestination', () => {
  it('picks the endpoint when header and metadata agree', () => {
    expect(resolveDestination('10.0.0.7:8000', '10.0.0.7:8000')).toMatchObject({
      kind: 'picked',
      agree: true,
      endpoint: { address: '10.0.0.7:8000' },
    });
  });

  it('uses the header when the two disagree, and says so', () => {
    expect(resolveDestination('10.0.0.7:8000', '10.0.0.8:8000')).toMatchObject({
      kind: 'picked',
      agree: false,
      endpoint: { address: '10.0.0.7:8000' },
    });
  });

  it('falls back to the metadata when the header is absent or invalid', () => {
    expect(resolveDestination(undefined, '10.0.0.8:8000')).toMatchObject({ kind: 'picked', endpoint: { address: '10.0.0.8:8000' } });
    expect(resolveDestination('garbage', '10.0.0.8:8000')).toMatchObject({
      kind: 'picked',
      agree: false,
      endpoint: { address: '10.0.0.8:8000' },
    });
  });

  it('reports no pick, telling absent from invalid', () => {
    expect(resolveDestination(undefined, undefined)).toMatchObject({ kind: 'none', reason: 'absent' });
    expect(resolveDestination('pod-a', 42)).toMatchObject({ kind: 'none', reason: 'invalid' });
  });
});

describe('parseEndpointList', () => {
  it('parses host names and IPs with ports', () => {
    expect(parseEndpointList('pod-a:8000, 10.0.0.2:8001', '--endpoints').map((e) => e.address)).toEqual(['pod-a:8000', '10.0.0.2:8001']);
  });

  it('names the flag and the bad entry', () => {
    expect(() => parseEndpointList('pod-a:8000,pod-b', '--endpoints')).toThrow(
      '--endpoints expects host:port[,host:port...] with ports 1-65535, got "pod-b"',
    );
    expect(() => parseEndpointList(' , ', '--endpoints')).toThrow('--endpoints expects at least one host:port');
  });
});

describe('RoundRobin', () => {
  it('hands out endpoints in turn and nothing when empty', () => {
    const rr = new RoundRobin(parseEndpointList('a:1,b:2,c:3', '--endpoints'));
    expect([1, 2, 3, 4, 5].map(() => rr.pick()?.host)).toEqual(['a', 'b', 'c', 'a', 'b']);
    expect(new RoundRobin([]).pick()).toBeUndefined();
  });
});
