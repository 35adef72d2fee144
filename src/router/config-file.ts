// The router's config file: read, validate (schema, then plugin types and parameters through the
// scheduling registry, so a bad file is rejected before anything is swapped) and watch for changes.
// A Kubernetes ConfigMap volume updates by swapping a `..data` symlink in the mount directory, which
// replaces the file's inode, so the directory is watched (and polled as a fallback); a new file that
// does not validate is logged naming the field, and the config in force stays.

import fs from 'node:fs';
import path from 'node:path';
import {
  ConfigError,
  DEPRECATED_ENDPOINT_PICKER_API_VERSION,
  ENDPOINT_PICKER_API_VERSION,
  IGNORED_LLM_D_KEYS,
  parseEndpointPickerConfig,
  type EndpointPickerConfig,
} from '../api/endpoint-picker-config.ts';
import type { Logger } from '../common/log.ts';
import { planScheduling } from './scheduling/registry.ts';

/** How often the file is re-read when no directory event arrives (events can be missed, e.g. on some volumes). */
const DEFAULT_POLL_INTERVAL_MS = 2_000;
/** Events of one ConfigMap update arrive in a burst (new dir, symlink, rename): read once after it. */
const EVENT_SETTLE_MS = 25;

/** Warnings about a valid config: a deprecated apiVersion, llm-d sections kvroute does not act on. */
function warnAbout(config: EndpointPickerConfig, source: string, log: Logger): void {
  if (config.apiVersion === DEPRECATED_ENDPOINT_PICKER_API_VERSION) {
    log.warn(
      `router config uses the deprecated apiVersion ${DEPRECATED_ENDPOINT_PICKER_API_VERSION}: write ${ENDPOINT_PICKER_API_VERSION}`,
      { source },
    );
  }
  for (const key of IGNORED_LLM_D_KEYS) {
    if (config[key] !== undefined) log.warn(`router config section "${key}" is llm-d's and has no effect in kvroute`, { source, key });
  }
}

/**
 * Parses and fully validates config text (`--config-text`, or a file's contents): the schema, then
 * every plugin's type and parameters. Throws ConfigError naming the field.
 */
export function parseConfigText(text: string, source: string, log?: Logger): EndpointPickerConfig {
  const config = parseEndpointPickerConfig(text, source);
  planScheduling(config, source);
  if (log) warnAbout(config, source, log);
  return config;
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read the router config: ${(err as Error).message}`]);
  }
}

/** Reads and validates the config file; throws ConfigError naming the file and the field. */
export function loadConfigFile(file: string, log?: Logger): EndpointPickerConfig {
  return parseConfigText(readText(file), file, log);
}

export interface WatchOptions {
  /** Fallback re-read interval (default 2 s). */
  pollIntervalMs?: number;
  /** The config already in force (from loadConfigFile); changes are reported relative to it. */
  initial?: EndpointPickerConfig;
  /** Called (after logging) for each new file content that does not validate, e.g. to count it. */
  onRejected?: (error: ConfigError) => void;
}

/**
 * Calls `onConfig` with each new valid config the file holds (a change of meaning, not of bytes). An
 * invalid file is logged and skipped; `onConfig` throwing is logged too. Never calls `onConfig` for
 * the config already in force.
 */
export function watchConfigFile(
  file: string,
  onConfig: (config: EndpointPickerConfig) => void,
  log: Logger,
  options: WatchOptions = {},
): { close(): void } {
  const dir = path.dirname(path.resolve(file));
  let lastText: string | undefined;
  let applied: string | undefined = options.initial ? JSON.stringify(options.initial) : undefined;
  let closed = false;
  let starting = true;
  let settle: NodeJS.Timeout | undefined;

  const check = (): void => {
    if (closed) return;
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      // Mid-swap or removed: the config in force stays until a readable file appears.
      if (lastText !== undefined)
        log.limited('config-unreadable', 'warn', 'router config unreadable: keeping the config in force', { file, err: err as Error });
      lastText = undefined;
      return;
    }
    if (text === lastText) return;
    lastText = text;
    let config: EndpointPickerConfig;
    try {
      config = parseConfigText(text, file);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      log.error('router config change rejected: keeping the config in force', { file, error: err.message });
      options.onRejected?.(err);
      return;
    }
    const canonical = JSON.stringify(config);
    if (canonical === applied) {
      log.debug('router config file rewritten without a change to the config', { file });
      return;
    }
    if (applied === undefined && starting) {
      // The first read without an initial config: the config in force, not a change.
      applied = canonical;
      return;
    }
    warnAbout(config, file, log);
    try {
      onConfig(config);
      applied = canonical;
      log.info('router config reloaded', { file });
    } catch (err) {
      log.error('router config change could not be applied: keeping the config in force', { file, err: err as Error });
    }
  };

  const schedule = (): void => {
    if (closed || settle) return;
    settle = setTimeout(() => {
      settle = undefined;
      check();
    }, EVENT_SETTLE_MS);
  };

  let watcher: fs.FSWatcher | undefined;
  try {
    watcher = fs.watch(dir, { persistent: false }, schedule);
    watcher.on('error', (err) => {
      log.warn('router config directory watch failed: polling only', { dir, err });
      watcher?.close();
    });
  } catch (err) {
    log.warn('cannot watch the router config directory: polling only', { dir, err: err as Error });
  }
  const poll = setInterval(check, options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS);
  poll.unref();
  check();
  starting = false;

  return {
    close() {
      closed = true;
      clearInterval(poll);
      if (settle) clearTimeout(settle);
      watcher?.close();
    },
  };
}
