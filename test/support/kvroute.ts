// `kvroute <subcommand>` as a real child process for tests and benchmarks: started from
// bin/kvroute.js with Node 24, its stdout and stderr kept in memory (printed when a test fails, and
// put in every error this module throws), readiness awaited from its structured log (which carries the
// ports it bound when given port 0) and/or an HTTP health URL, and a SIGTERM-then-SIGKILL stop.

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { onTestFailure } from './failures.ts';
import { kvrouteBin, nodeBinary } from './node.ts';
import { repoRoot } from './repo-root.ts';
import { until } from './until.ts';

/** One JSON log line of a kvroute process (src/common/log.ts): ts, level, msg, component, fields. */
export type LogRecord = Record<string, unknown> & { msg?: unknown };

/** A log line to wait for: its `msg`, or a predicate over the parsed record. */
export type LogMatch = string | ((record: LogRecord) => boolean);

export interface SpawnKvrouteOptions {
  /** Added to (and overriding) this process's environment. */
  env?: NodeJS.ProcessEnv;
  /** Resolve once this log line appears; its record is returned as `ready` (read bound ports from it). */
  readyLine?: LogMatch;
  /** Resolve once this URL answers 2xx; a function is given the readyLine record (for a port bound on port 0). */
  readyUrl?: string | ((ready: LogRecord) => string);
  /** How long to wait for readiness; default 60 s (tokenizers load slowly on a busy machine). */
  timeoutMs?: number;
  /** Name in errors and log dumps; default "kvroute <subcommand>". */
  name?: string;
  /** Also append everything the process prints to this file. */
  logFile?: string;
}

export interface KvrouteProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** The readyLine record, or an empty record when no readyLine was asked for. */
  readonly ready: LogRecord;
  /** Resolves with the exit code (null when killed by a signal) once the process has exited. */
  readonly exited: Promise<number | null>;
  /** Everything the process printed so far, stdout and stderr lines in arrival order. */
  logs(): string;
  /** Its JSON log records so far. */
  records(): LogRecord[];
  /** The first log record matching `match` (waiting for it); rejects with the logs if the process exits first. */
  waitForLog(match: LogMatch, timeoutMs?: number): Promise<LogRecord>;
  /** SIGTERM, then SIGKILL after `graceMs` (default 10 s); resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
}

const DUMP_LINES = 200;

function matches(match: LogMatch, record: LogRecord): boolean {
  return typeof match === 'string' ? record.msg === match : match(record);
}

function describeMatch(match: LogMatch): string {
  return typeof match === 'string' ? `log line "${match}"` : 'a matching log line';
}

/**
 * Starts `kvroute ...args` from the repository root and, when asked, waits until it is ready: first
 * the readyLine (whose record can name the ports it bound), then the readyUrl. Without either it
 * returns at once (for commands expected to exit: await `exited`). On a readiness timeout, or an exit
 * before readiness, the process is killed and the error carries its output. While it runs, a failing
 * test or hook prints the last lines of its output.
 */
export async function spawnKvroute(args: string[], options: SpawnKvrouteOptions = {}): Promise<KvrouteProcess> {
  const name = options.name ?? `kvroute ${args[0] ?? ''}`.trim();
  const child = spawn(nodeBinary(), [kvrouteBin, ...args], {
    cwd: repoRoot,
    env: options.env ? { ...process.env, ...options.env } : process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const records: LogRecord[] = [];
  const listeners = new Set<() => void>();
  const file = options.logFile ? fs.createWriteStream(options.logFile, { flags: 'a' }) : undefined;
  let exitCode: number | null | undefined;

  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      exitCode = code;
      for (const notify of [...listeners]) notify();
      resolve(code);
    });
  });
  for (const stream of [child.stdout!, child.stderr!]) {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      file?.write(chunk);
      partial += chunk;
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        lines.push(line);
        if (line.startsWith('{')) {
          try {
            records.push(JSON.parse(line) as LogRecord);
          } catch {
            // Not a log record: kept as a line only.
          }
        }
      }
      for (const notify of [...listeners]) notify();
    });
  }
  const logs = () => lines.join('\n');
  const tail = () => lines.slice(-DUMP_LINES).join('\n');

  let dumped = false;
  const stopWatchingFailures = onTestFailure((what) => {
    if (dumped) return;
    dumped = true;
    process.stderr.write(
      `\n--- ${name} (pid ${child.pid}): last ${DUMP_LINES} lines of output at the failure of ${what} ---\n${tail()}\n--- end of ${name} output ---\n`,
    );
  });
  void exited.then(() => file?.end());

  const waitForLog = (match: LogMatch, timeoutMs = 60_000): Promise<LogRecord> =>
    new Promise((resolve, reject) => {
      const check = () => {
        const found = records.find((r) => matches(match, r));
        if (found) return settle(() => resolve(found));
        if (exitCode !== undefined)
          settle(() => reject(new Error(`${name} exited with ${exitCode} before ${describeMatch(match)}; its output:\n${tail()}`)));
      };
      const timer = setTimeout(
        () => settle(() => reject(new Error(`${name} printed no ${describeMatch(match)} within ${timeoutMs} ms; its output:\n${tail()}`))),
        timeoutMs,
      );
      const settle = (done: () => void) => {
        clearTimeout(timer);
        listeners.delete(check);
        done();
      };
      listeners.add(check);
      check();
    });

  const stop = async (graceMs = 10_000): Promise<number | null> => {
    if (exitCode === undefined) {
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      child.kill('SIGTERM');
      await exited;
      clearTimeout(timer);
    }
    stopWatchingFailures();
    return exitCode ?? null;
  };

  const timeoutMs = options.timeoutMs ?? 60_000;
  const started = Date.now();
  let ready: LogRecord = {};
  try {
    if (options.readyLine !== undefined) ready = await waitForLog(options.readyLine, timeoutMs);
    if (options.readyUrl !== undefined) {
      const url = typeof options.readyUrl === 'function' ? options.readyUrl(ready) : options.readyUrl;
      const healthy = until(async () => (await fetch(url)).ok, {
        message: `${name} to answer ${url}`,
        timeoutMs: Math.max(1, timeoutMs - (Date.now() - started)),
        intervalMs: 50,
      });
      const died = exited.then((code) => Promise.reject(new Error(`${name} exited with ${code} before answering ${url}`)));
      died.catch(() => {});
      await Promise.race([healthy, died]).catch((err: unknown) => {
        throw new Error(`${name} did not become ready: ${(err as Error).message}; its output:\n${tail()}`);
      });
    }
  } catch (err) {
    await stop(2_000);
    throw err;
  }

  return { name, child, ready, exited, logs, records: () => [...records], waitForLog, stop };
}

/** A field of a log record that must be a port number (as the kvroute servers log their bound ports). */
export function portOf(record: LogRecord, field: string): number {
  const value = record[field];
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0)
    throw new Error(`log record "${String(record.msg)}" has no port in "${field}": ${JSON.stringify(record)}`);
  return value;
}
