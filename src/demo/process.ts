// `kvroute <subcommand>` as a child process of the routing harness: started from bin/kvroute.js with
// this process's Node, its JSON log records read as they arrive (readiness and bound ports come from
// them), its output appended to a log file with the last lines kept for errors, and stopped with
// SIGTERM then SIGKILL. Children still running when this process exits are killed with it.

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { stopChild } from '../common/child-process.ts';

const KVROUTE_BIN = fileURLToPath(new URL('../../bin/kvroute.js', import.meta.url));

/** Output lines kept in memory per child, for error messages. */
const TAIL_LINES = 60;
/** Log records kept for `waitForLog` (debug records are only passed to `onRecord`). */
const KEPT_RECORDS = 2_000;

/** One JSON log line of a kvroute process (src/common/log.ts). */
export type LogRecord = Record<string, unknown> & { msg?: unknown; level?: unknown };
export type LogMatch = string | ((record: LogRecord) => boolean);

export interface StartKvrouteOptions {
  /** Name in errors, e.g. "kvroute sim". */
  name: string;
  /** Appends everything the child prints to this file. */
  logFile?: string;
  /** Sees every log record, debug included, as it arrives. */
  onRecord?: (record: LogRecord) => void;
}

export interface KvrouteChild {
  readonly name: string;
  readonly child: ChildProcess;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  /** The first record (from the start, debug records excepted) matching `match`; rejects on exit or timeout. */
  waitForLog(match: LogMatch, timeoutMs: number, after?: number): Promise<LogRecord>;
  /** How many non-debug records arrived so far: pass it as `after` to wait only for later ones. */
  recordCount(): number;
  /** The last lines it printed, for error messages. */
  tail(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it exited. */
  stop(graceMs?: number): Promise<void>;
  /** True once stop() (or stopAllChildren) was called: an exit after it is expected. */
  readonly stopRequested: boolean;
}

const running = new Set<ChildProcess>();
/** Children stopAllChildren has asked to stop. */
const stopped = new WeakSet<ChildProcess>();
let exitHookInstalled = false;

/** Kills children left running when this process exits (an uncaught error, process.exit). */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

function matches(match: LogMatch, record: LogRecord): boolean {
  return typeof match === 'string' ? record.msg === match : match(record);
}

/** Starts `kvroute ...args`; wait for readiness with `waitForLog`. */
export function startKvroute(args: string[], options: StartKvrouteOptions): KvrouteChild {
  installExitHook();
  const child = spawn(process.execPath, [KVROUTE_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  const file: WriteStream | undefined = options.logFile ? createWriteStream(options.logFile, { flags: 'a' }) : undefined;
  const lines: string[] = [];
  const records: LogRecord[] = [];
  let dropped = 0;
  const listeners = new Set<() => void>();
  let exitCode: number | null | undefined;
  let spawnError: Error | undefined;

  const exited = new Promise<number | null>((resolve) => {
    child.once('error', (err) => {
      spawnError = err;
      exitCode = null;
      running.delete(child);
      for (const notify of [...listeners]) notify();
      resolve(null);
    });
    child.once('exit', (code) => {
      exitCode = code;
      running.delete(child);
      for (const notify of [...listeners]) notify();
      resolve(code);
    });
  });
  void exited.then(() => file?.end());

  const onLine = (line: string): void => {
    lines.push(line);
    if (lines.length > TAIL_LINES) lines.shift();
    if (!line.startsWith('{')) return;
    let record: LogRecord;
    try {
      record = JSON.parse(line) as LogRecord;
    } catch {
      return;
    }
    options.onRecord?.(record);
    if (record.level === 'debug') return;
    records.push(record);
    if (records.length > KEPT_RECORDS) {
      records.shift();
      dropped++;
    }
    for (const notify of [...listeners]) notify();
  };
  for (const stream of [child.stdout!, child.stderr!]) {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      file?.write(chunk);
      partial += chunk;
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        onLine(partial.slice(0, nl));
        partial = partial.slice(nl + 1);
      }
    });
  }

  const tail = (): string => lines.join('\n');
  const describe = (match: LogMatch): string => (typeof match === 'string' ? `log line "${match}"` : 'matching log line');

  const waitForLog = (match: LogMatch, timeoutMs: number, after = 0): Promise<LogRecord> =>
    new Promise((resolve, reject) => {
      const settle = (done: () => void): void => {
        clearTimeout(timer);
        listeners.delete(check);
        done();
      };
      function check(): void {
        for (let i = Math.max(0, after - dropped); i < records.length; i++) {
          const record = records[i]!;
          if (matches(match, record)) return settle(() => resolve(record));
        }
        if (exitCode !== undefined) {
          const why = spawnError ? `could not start (${spawnError.message})` : `exited with code ${exitCode}`;
          settle(() => reject(new Error(`${options.name} ${why} before printing the ${describe(match)}; its last output:\n${tail()}`)));
        }
      }
      const timer = setTimeout(
        () =>
          settle(() =>
            reject(new Error(`${options.name} printed no ${describe(match)} within ${timeoutMs} ms; its last output:\n${tail()}`)),
          ),
        timeoutMs,
      );
      listeners.add(check);
      check();
    });

  return {
    name: options.name,
    child,
    exited,
    waitForLog,
    recordCount: () => records.length + dropped,
    tail,
    stop: async (graceMs = 10_000) => {
      stopped.add(child);
      if (exitCode === undefined) await stopChild(child, graceMs);
      await exited;
    },
    get stopRequested() {
      return stopped.has(child);
    },
  };
}

/** Stops every child still running (SIGTERM, then SIGKILL after `graceMs`): for a signal to this process. */
export async function stopAllChildren(graceMs: number): Promise<void> {
  for (const child of running) stopped.add(child);
  await Promise.all([...running].map((child) => stopChild(child, graceMs)));
}
