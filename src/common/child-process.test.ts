import { describe, it, expect } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { stopChild } from './child-process.ts';

/** A node child that prints "ready" once its SIGTERM handler (if any) is installed. */
async function startNode(script: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', `${script}; console.log('ready'); setInterval(() => {}, 1000);`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await once(child.stdout!, 'data');
  return child;
}

describe('stopChild', () => {
  it('stops a child that exits on SIGTERM with SIGTERM', async () => {
    const child = await startNode('');
    await stopChild(child, 10_000);
    expect(child.signalCode).toBe('SIGTERM');
  });

  it('kills a child that ignores SIGTERM once the grace period is over', async () => {
    const child = await startNode("process.on('SIGTERM', () => {})");
    const started = Date.now();
    await stopChild(child, 200);
    expect(child.signalCode).toBe('SIGKILL');
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
  });

  it('resolves at once for a child that has already exited', async () => {
    const child = spawn(process.execPath, ['-e', 'process.exit(3)'], { stdio: 'ignore' });
    await once(child, 'exit');
    await stopChild(child, 10_000);
    expect(child.exitCode).toBe(3);
  });
});
