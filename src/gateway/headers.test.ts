import { describe, expect, it } from '@jest/globals';
import {
  HeaderMutationError,
  applyHeaderMutation,
  requestHeaderList,
  responseHeaderList,
  toHeaderMap,
  toNodeHeaders,
  type HeaderList,
} from './headers.ts';

const raw = (value: string) => Buffer.from(value);

describe('requestHeaderList', () => {
  it('puts the pseudo-headers first, drops Host and hop-by-hop headers, and adds x-forwarded-proto and x-request-id as Envoy does', () => {
    const list = requestHeaderList(
      [
        'Host',
        'gw:8080',
        'Connection',
        'keep-alive',
        'Content-Type',
        'application/json',
        'X-Forwarded-Proto',
        'https',
        'Transfer-Encoding',
        'chunked',
      ],
      {
        method: 'POST',
        path: '/v1/completions?x=1',
        scheme: 'http',
        requestId: () => 'rid-1',
      },
    );
    expect(list).toEqual([
      [':authority', 'gw:8080'],
      [':path', '/v1/completions?x=1'],
      [':method', 'POST'],
      [':scheme', 'http'],
      ['content-type', 'application/json'],
      ['x-forwarded-proto', 'http'],
      ['x-request-id', 'rid-1'],
    ]);
  });

  it("keeps the client's x-request-id where it was", () => {
    const list = requestHeaderList(['host', 'h', 'x-request-id', 'mine', 'accept', '*/*'], {
      method: 'GET',
      path: '/',
      scheme: 'http',
      requestId: () => 'generated',
    });
    expect(list.map(([k]) => k)).toEqual([':authority', ':path', ':method', ':scheme', 'x-request-id', 'accept', 'x-forwarded-proto']);
    expect(list.find(([k]) => k === 'x-request-id')?.[1]).toBe('mine');
  });
});

describe('toHeaderMap', () => {
  it('encodes values as raw_value bytes and leaves value unset', () => {
    expect(toHeaderMap([[':status', '200']])).toEqual({ headers: [{ key: ':status', raw_value: raw('200') }] });
  });
});

describe('applyHeaderMutation', () => {
  const base: HeaderList = [
    [':authority', 'gw'],
    [':path', '/a'],
    [':method', 'GET'],
    ['x-foo', 'bar'],
    ['x-keep', '1'],
    ['host', 'gw'],
  ];

  it('replaces by default, appends only with the deprecated append flag, and ignores append_action (Envoy 1.40)', () => {
    const { headers } = applyHeaderMutation(base, {
      set_headers: [
        { header: { key: 'x-foo', raw_value: raw('new') }, append_action: 'ADD_IF_ABSENT' },
        { header: { key: 'x-keep', raw_value: raw('2') }, append: { value: true } } as never,
        { header: { key: 'x-new', raw_value: raw('n') }, append_action: 'OVERWRITE_IF_EXISTS' },
      ],
    });
    expect(headers.filter(([k]) => k.startsWith('x-'))).toEqual([
      ['x-keep', '1'],
      ['x-foo', 'new'],
      ['x-keep', '2'],
      ['x-new', 'n'],
    ]);
  });

  it('reads raw_value only: a value-only entry sets an empty header, as Envoy does', () => {
    const { headers } = applyHeaderMutation(base, { set_headers: [{ header: { key: 'x-foo', value: 'ignored' } }] });
    expect(headers).toContainEqual(['x-foo', '']);
  });

  it('lets :path change but ignores routing, x-envoy and pseudo-header removals', () => {
    const { headers, ignored } = applyHeaderMutation(base, {
      set_headers: [
        { header: { key: ':path', raw_value: raw('/b') } },
        { header: { key: ':authority', raw_value: raw('evil') } },
        { header: { key: 'host', raw_value: raw('evil') } },
        { header: { key: ':method', raw_value: raw('DELETE') } },
        { header: { key: 'x-envoy-retry-on', raw_value: raw('5xx') } },
      ],
      remove_headers: ['x-foo', ':path', 'host'],
    });
    expect(headers).toEqual([
      [':authority', 'gw'],
      [':method', 'GET'],
      ['x-keep', '1'],
      ['host', 'gw'],
      [':path', '/b'],
    ]);
    expect(ignored.sort()).toEqual([':authority', ':method', ':path', 'host', 'host', 'x-envoy-retry-on']);
  });

  it('fails on an invalid header name, value or :status', () => {
    expect(() => applyHeaderMutation(base, { set_headers: [{ header: { key: 'bad name', raw_value: raw('v') } }] })).toThrow(
      HeaderMutationError,
    );
    expect(() => applyHeaderMutation(base, { set_headers: [{ header: { key: 'x-a', raw_value: raw('a\r\nb') } }] })).toThrow(
      HeaderMutationError,
    );
    expect(() =>
      applyHeaderMutation(responseHeaderList(200, []), { set_headers: [{ header: { key: ':status', raw_value: raw('abc') } }] }),
    ).toThrow(HeaderMutationError);
  });
});

describe('toNodeHeaders', () => {
  it('keeps repeats and drops pseudo and hop-by-hop headers', () => {
    const list = responseHeaderList(200, [
      'Set-Cookie',
      'a=1',
      'Set-Cookie',
      'b=2',
      'Connection',
      'keep-alive',
      'Transfer-Encoding',
      'chunked',
    ]);
    expect(toNodeHeaders(list)).toEqual(['set-cookie', 'a=1', 'set-cookie', 'b=2']);
  });
});
