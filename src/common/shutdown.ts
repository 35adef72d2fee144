// Graceful shutdown: on SIGTERM or SIGINT run the registered closers in reverse order, once,
// bounded by a deadline so a stuck closer cannot keep a terminating pod alive.

import type { Logger } from './log.ts';

export type Closer = () => Promise<void> | void;

export function onShutdown(log: Logger, closers: Closer[], deadlineMs = 20_000): () => Promise<void> {
  let closing: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    closing ??= (async () => {
      log.info('shutting down');
      const timer = setTimeout(() => {
        log.error('shutdown deadline passed, exiting', { deadlineMs });
        process.exit(1);
      }, deadlineMs);
      timer.unref();
      for (const close of [...closers].reverse()) {
        try {
          await close();
        } catch (err) {
          log.error('closer failed during shutdown', { err });
        }
      }
      clearTimeout(timer);
      log.info('shutdown complete');
    })();
    return closing;
  };
  const handler = () => void shutdown().then(() => process.exit(0));
  process.once('SIGTERM', handler);
  process.once('SIGINT', handler);
  return shutdown;
}
