import { describe, expect, it } from '@jest/globals';
import { createLogger, parseLogLevel } from './log.ts';

function capture(intervalMs = 1000, perInterval = 2) {
  const lines: Array<Record<string, unknown>> = [];
  let t = 0;
  const log = createLogger({
    level: 'info',
    component: 'test',
    write: (l) => lines.push(JSON.parse(l)),
    now: () => t,
    intervalMs,
    perInterval,
  });
  return { log, lines, advance: (ms: number) => (t += ms) };
}

describe('createLogger', () => {
  it('writes one JSON object per record with level, message, component and fields', () => {
    const { log, lines } = capture();
    log.info('hello', { pod: 'a', err: new Error('boom'), big: 2n ** 64n });
    expect(lines).toEqual([
      {
        ts: '1970-01-01T00:00:00.000Z',
        level: 'info',
        msg: 'hello',
        component: 'test',
        pod: 'a',
        err: 'boom',
        big: '18446744073709551616',
      },
    ]);
  });

  it('drops records below the level threshold', () => {
    const { log, lines } = capture();
    log.debug('quiet');
    expect(lines).toHaveLength(0);
  });

  it('rate-limits repeated records per key and reports how many it suppressed', () => {
    const { log, lines, advance } = capture(1000, 2);
    for (let i = 0; i < 5; i++) log.limited('gap:pod-a', 'warn', 'gap');
    expect(lines.map((l) => l.msg)).toEqual(['gap', 'gap']);
    advance(1000);
    log.limited('gap:pod-a', 'warn', 'gap');
    expect(lines.map((l) => l.msg)).toEqual(['gap', 'gap', '3 similar records suppressed', 'gap']);
  });

  it('forgets expired rate windows once many keys have piled up', () => {
    let t = 0;
    const windows = new Map();
    const log = createLogger({ write: () => {}, now: () => t, intervalMs: 1000, perInterval: 1 }, {}, windows);
    for (let i = 0; i < 1024; i++) log.limited(`gap:pod-${i}`, 'warn', 'gap');
    expect(windows.size).toBe(1024);
    t += 1000;
    log.limited('gap:pod-new', 'warn', 'gap');
    expect([...windows.keys()]).toEqual(['gap:pod-new']);
  });

  it('child loggers carry their parent fields', () => {
    const { log, lines } = capture();
    log.child({ pod: 'b' }).warn('x');
    expect(lines[0]).toMatchObject({ component: 'test', pod: 'b', level: 'warn' });
  });
});

describe('parseLogLevel', () => {
  it('names the accepted levels when given another', () => {
    expect(() => parseLogLevel('loud')).toThrow('invalid log level "loud": expected one of debug, info, warn, error');
  });
});
