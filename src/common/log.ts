// Structured JSON logging: one line per record on stderr, with a level threshold and rate limiting
// for records that can repeat at line rate (malformed events, dropped connections).

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const LEVEL_RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
export const LOG_LEVELS = Object.keys(LEVEL_RANK) as LogLevel[];

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
  /** Logs at most `perInterval` records per `key` each `intervalMs`; reports how many were suppressed. */
  limited(key: string, level: LogLevel, msg: string, fields?: LogFields): void;
}

export interface LoggerOptions {
  level?: LogLevel;
  component?: string;
  write?: (line: string) => void;
  now?: () => number;
  intervalMs?: number;
  perInterval?: number;
}

const MAX_RATE_WINDOWS = 1024;

interface RateWindow {
  start: number;
  count: number;
  suppressed: number;
}

export function parseLogLevel(value: string): LogLevel {
  if ((LOG_LEVELS as string[]).includes(value)) return value as LogLevel;
  throw new Error(`invalid log level "${value}": expected one of ${LOG_LEVELS.join(', ')}`);
}

function errorFields(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [k, v] of Object.entries(fields)) {
    out[k] = v instanceof Error ? v.message : typeof v === 'bigint' ? v.toString() : v;
  }
  return out;
}

export function createLogger(options: LoggerOptions = {}, base: LogFields = {}, windows = new Map<string, RateWindow>()): Logger {
  const threshold = LEVEL_RANK[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const now = options.now ?? Date.now;
  const intervalMs = options.intervalMs ?? 10_000;
  const perInterval = options.perInterval ?? 5;
  const scope = options.component ? { component: options.component, ...base } : base;

  const emit = (level: LogLevel, msg: string, fields?: LogFields): void => {
    if (LEVEL_RANK[level] < threshold) return;
    const record = { ts: new Date(now()).toISOString(), level, msg, ...scope, ...(fields ? errorFields(fields) : {}) };
    write(JSON.stringify(record));
  };

  return {
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
    child: (fields) => createLogger({ ...options, component: undefined }, { ...scope, ...fields }, windows),
    limited(key, level, msg, fields) {
      const t = now();
      // Keys can carry per-source names; forget windows that have run out once many pile up.
      if (windows.size >= MAX_RATE_WINDOWS) {
        for (const [k, old] of windows) if (t - old.start >= intervalMs && old.suppressed === 0) windows.delete(k);
      }
      let w = windows.get(key);
      if (!w || t - w.start >= intervalMs) {
        const suppressed = w?.suppressed ?? 0;
        w = { start: t, count: 0, suppressed: 0 };
        windows.set(key, w);
        if (suppressed > 0) emit(level, `${suppressed} similar records suppressed`, { key });
      }
      if (w.count < perInterval) {
        w.count++;
        emit(level, msg, fields);
      } else {
        w.suppressed++;
      }
    },
  };
}

/** A logger that records nothing, for tests and library callers that do not care. */
export const silentLogger: Logger = createLogger({ write: () => {} });
