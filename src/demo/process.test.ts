import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKvroute, type LogRecord } from './process.ts';

describe('startKvroute', () => {
  it("reads the bound port from a child's log, keeps its output in a file, and stops it", async () => {
    const logFile = join(mkdtempSync(join(tmpdir(), 'kvroute-process-')), 'gateway.log');
    const seen: LogRecord[] = [];
    const gateway = startKvroute(['gateway', '--builtin', '--router=127.0.0.1:1', '--host=127.0.0.1', '--port=0', '--admin-port=0'], {
      name: 'kvroute gateway',
      logFile,
      onRecord: (r) => seen.push(r),
    });
    const ready = await gateway.waitForLog((r) => r.msg === 'listening' && r.what === 'gateway', 60_000);
    expect(ready.port).toEqual(expect.any(Number));
    expect(gateway.recordCount()).toBeGreaterThan(0);
    expect(seen).toContainEqual(ready);
    // Only later records count once `after` is given.
    await expect(gateway.waitForLog('listening', 200, gateway.recordCount())).rejects.toThrow(
      'kvroute gateway printed no log line "listening" within 200 ms',
    );
    expect(gateway.stopRequested).toBe(false);
    await gateway.stop(10_000);
    expect(gateway.stopRequested).toBe(true);
    expect(await gateway.exited).toBe(0);
    expect(readFileSync(logFile, 'utf8')).toContain('"msg":"listening"');
  }, 90_000);

  it('rejects a wait when the child exits first, with what it printed', async () => {
    const gateway = startKvroute(['gateway', '--port=not-a-port'], { name: 'kvroute gateway' });
    const failure = gateway.waitForLog('listening', 60_000);
    await expect(failure).rejects.toThrow(
      /kvroute gateway exited with code 1 before printing the log line "listening"; its last output:\n.*--port expects a port/s,
    );
    expect(gateway.tail()).toContain('--port expects a port');
    await gateway.stop();
  }, 90_000);
});
