import { describe, expect, it, jest } from '@jest/globals';
import { describeProgress, formatDuration, Progress } from './progress.ts';

function capture(isTTY: boolean): { write: (s: string) => boolean; isTTY: boolean; columns: number; out: string[] } {
  const out: string[] = [];
  return {
    isTTY,
    columns: 100,
    out,
    write: (s: string) => {
      out.push(s);
      return true;
    },
  };
}

function clock(): { now: () => number; t: number } {
  const c = { t: 0, now: () => c.t };
  return c;
}

describe('progress', () => {
  it('describes done/total, percentage, rate and time left', () => {
    expect(describeProgress({ label: 'x', unit: 'req', done: 120, total: 240, elapsedMs: 10_000 })).toBe('120/240 50% 12.0 req/s ETA 0:10');
    expect(describeProgress({ label: 'x', unit: 'req', done: 0, total: 10, elapsedMs: 0 })).toBe('0/10 0% 0.00 req/s ETA -');
    expect(describeProgress({ label: 'x', unit: 'req', done: 10, total: 10, elapsedMs: 65_000 })).toBe(
      '10/10 100% 0.15 req/s elapsed 1:05',
    );
    expect(formatDuration(3_725_000)).toBe('1:02:05');
  });

  it('redraws one line in place on a terminal, throttled, and ends it on finish', () => {
    const stream = capture(true);
    const c = clock();
    const p = new Progress({ total: 4, label: 'kvroute', stream, now: c.now, timer: false });
    c.t = 1000;
    p.tick();
    c.t = 1050;
    p.tick(); // within 100 ms of the last draw: skipped
    c.t = 2000;
    p.tick();
    c.t = 2010;
    p.tick(); // the last one always draws
    p.finish();
    p.tick(); // after finish: nothing
    const draws = stream.out.filter((s) => s.startsWith('\r'));
    expect(draws).toHaveLength(5);
    expect(draws[1]).toBe('\rkvroute [######..................] 1/4 25% 1.00 req/s ETA 0:03\x1b[K');
    expect(draws[3]).toContain('4/4 100%');
    expect(stream.out.join('')).not.toContain('\n\r');
    expect(stream.out[stream.out.length - 1]).toBe('\n');
  });

  it('writes plain lines at most every interval when not on a terminal', () => {
    const stream = capture(false);
    const c = clock();
    const p = new Progress({ total: 100, label: 'random', stream, now: c.now, timer: false, lineIntervalMs: 5000 });
    for (let i = 1; i <= 100; i++) {
      c.t = i * 100; // 10 s in all
      p.tick();
    }
    p.finish();
    expect(stream.out).toEqual([
      'random 1/100 1% 10.0 req/s ETA 0:10\n',
      'random 51/100 51% 10.0 req/s ETA 0:05\n',
      'random 100/100 100% 10.0 req/s elapsed 0:10\n',
    ]);
    expect(stream.out.every((l) => !l.includes('\r'))).toBe(true);
  });

  it('restarts the count for a new phase on a new line', () => {
    const stream = capture(true);
    const c = clock();
    const p = new Progress({ total: 2, label: 'random', stream, now: c.now, timer: false });
    c.t = 500;
    p.update(2);
    p.restart('kvroute', 3);
    c.t = 800;
    p.tick();
    p.finish();
    const text = stream.out.join('');
    expect(text).toContain('random [########################] 2/2 100%');
    expect(text).toContain('\n\rkvroute [........................] 0/3 0%');
    expect(text).toContain('kvroute [########................] 1/3 33% 3.33 req/s');
  });

  it('keeps writing on a timer while nothing completes', async () => {
    const stream = capture(false);
    const p = new Progress({ total: 5, label: 'stalled', stream, lineIntervalMs: 20 });
    const deadline = Date.now() + 5000;
    while (stream.out.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    p.finish();
    expect(stream.out.length).toBeGreaterThanOrEqual(2);
    expect(stream.out[0]).toMatch(/^stalled 0\/5 0% 0\.00 req\/s ETA -\n$/);
  });

  it('writes to stderr by default and never to stdout', () => {
    const stdout = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const p = new Progress({ total: 1, label: 'x', timer: false });
      p.tick();
      p.finish();
      expect(stdout).not.toHaveBeenCalled();
      expect(stderr).toHaveBeenCalled();
    } finally {
      stdout.mockRestore();
      stderr.mockRestore();
    }
  });

  it('rejects a total that is not a count', () => {
    expect(() => new Progress({ total: -1, timer: false })).toThrow('progress total: expected a non-negative integer, got -1');
  });
});
