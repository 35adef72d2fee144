import { describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import { silentLogger } from '../../common/log.ts';
import { formatAddress, parseHostPort } from './address.ts';
import { createStaticEndpointSource, parseStaticEndpoints } from './static-source.ts';

describe('parseHostPort', () => {
  it('accepts IPv4, bracketed IPv6 and hostnames with a port', () => {
    expect(parseHostPort('10.0.0.7:8000')).toEqual({ host: '10.0.0.7', port: 8000, address: '10.0.0.7:8000' });
    expect(parseHostPort('[fd00::1]:8001')).toEqual({ host: 'fd00::1', port: 8001, address: '[fd00::1]:8001' });
    expect(parseHostPort('vllm-0.vllm.ml.svc:80')).toEqual({ host: 'vllm-0.vllm.ml.svc', port: 80, address: 'vllm-0.vllm.ml.svc:80' });
    expect(parseHostPort(' localhost:65535 ').address).toBe('localhost:65535');
  });

  it.each([
    ['10.0.0.7', /missing ":port"/],
    ['10.0.0.7:0', /port 0 is outside 1-65535/],
    ['10.0.0.7:65536', /port 65536 is outside/],
    ['10.0.0.7:http', /port "http" is not a number/],
    ['10.0.0.7:', /port "" is not a number/],
    ['300.0.0.1:80', /"300.0.0.1" is not an IPv4 address or hostname/],
    ['fd00::1:80', /IPv6 address must be written in brackets/],
    ['[fd00::zz]:80', /not an IPv6 address/],
    ['[fd00::1]80', /missing ":port" after "]"/],
    ['[fd00::1:80', /unclosed "\["/],
    [':80', /missing host/],
    ['bad_host:80', /not an IPv4 address or hostname/],
  ])('rejects %s, naming the item', (item, why) => {
    expect(() => parseHostPort(item)).toThrow(why);
    expect(() => parseHostPort(item)).toThrow(`endpoint "${item}"`);
  });

  it('brackets IPv6 addresses only', () => {
    expect(formatAddress('10.1.2.3', 8000)).toBe('10.1.2.3:8000');
    expect(formatAddress('2001:db8::5', 8000)).toBe('[2001:db8::5]:8000');
  });
});

describe('static endpoint source', () => {
  it('splits comma lists and makes one endpoint per item, named by its address', () => {
    expect(parseStaticEndpoints(['127.0.0.1:8000,127.0.0.1:8001', '[::1]:9000'])).toEqual([
      { address: '127.0.0.1:8000', ip: '127.0.0.1', port: 8000, name: '127.0.0.1:8000', namespace: '', labels: {} },
      { address: '127.0.0.1:8001', ip: '127.0.0.1', port: 8001, name: '127.0.0.1:8001', namespace: '', labels: {} },
      { address: '[::1]:9000', ip: '::1', port: 9000, name: '[::1]:9000', namespace: '', labels: {} },
    ]);
  });

  it('rejects an empty list, a bad item and a repeated item, naming it', () => {
    expect(() => parseStaticEndpoints([' , '])).toThrow('--endpoints: expected at least one host:port');
    expect(() => parseStaticEndpoints(['127.0.0.1:8000,nope'])).toThrow('endpoint "nope": missing ":port"');
    expect(() => parseStaticEndpoints(['127.0.0.1:8000', '127.0.0.1:8000'])).toThrow('endpoint "127.0.0.1:8000": listed twice');
  });

  it('is synced at once with every endpoint in its snapshot, metrics pending the first scrape', async () => {
    const source = createStaticEndpointSource({
      addresses: ['127.0.0.1:1', '127.0.0.1:2'],
      scrape: { intervalMs: 50, stalenessMs: 2000 },
      log: silentLogger,
      registry: new Registry(),
    });
    try {
      expect(source.synced()).toBe(true);
      expect(source.snapshot().map((s) => [s.endpoint.address, s.metrics, s.inFlight])).toEqual([
        ['127.0.0.1:1', null, 0],
        ['127.0.0.1:2', null, 0],
      ]);
      source.requestStarted('127.0.0.1:2');
      expect(source.snapshot()[1]!.inFlight).toBe(1);
      source.requestFinished('127.0.0.1:2');
      expect(source.snapshot()[1]!.inFlight).toBe(0);
    } finally {
      await source.close();
    }
  });
});
