import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { parseDuration } from './duration.ts';

describe('parseDuration', () => {
  it('reads the units Go and Kubernetes write', () => {
    expect(parseDuration('50ms')).toBe(50);
    expect(parseDuration('2s')).toBe(2_000);
    expect(parseDuration('1m')).toBe(60_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('1500us')).toBe(1.5);
    expect(parseDuration('250000ns')).toBe(0.25);
    expect(parseDuration('0')).toBe(0);
  });

  it('adds up compound and fractional durations', () => {
    expect(parseDuration('1m30s')).toBe(90_000);
    expect(parseDuration('1.5s')).toBe(1_500);
    expect(parseDuration('.5s')).toBe(500);
    expect(parseDuration('1h2m3s4ms')).toBe(3_723_004);
  });

  it('rejects bare numbers, signs, unknown units and trailing junk, naming the field', () => {
    for (const bad of ['', '50', '-1s', '2 s', '3d', '1s!', 'ms', '1.2.3s']) {
      expect(() => parseDuration(bad, '--drain-timeout')).toThrow(/--drain-timeout: expected a duration/);
    }
  });

  it('reads back any whole number of milliseconds written with ms', () => {
    fc.assert(fc.property(fc.nat(1e9), (n) => parseDuration(`${n}ms`) === n));
  });
});
