// Stopping a child process the way Kubernetes stops a container: SIGTERM, a grace period for a
// graceful shutdown, then SIGKILL. Used by the local demo pool and by tests that run real peers.

import type { ChildProcess } from 'node:child_process';

/**
 * Sends SIGTERM and resolves once the child has exited; a child still running after `graceMs` is
 * killed with SIGKILL. Resolves at once for a child that has already exited.
 */
export function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
