// Running a real Envoy as the gateway: finding the binary (--envoy PATH, `envoy` on PATH, or the one
// hack/envoy/install.sh caches), starting it on a config written to a temporary file, learning the
// ports it bound (listeners and admin may be port 0) from its admin API, and stopping it.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { stopChild } from '../common/child-process.ts';
import type { Logger } from '../common/log.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** Where `bash hack/envoy/install.sh` links the binary. */
const CACHED_ENVOY = path.join(REPO_ROOT, '.cache/envoy/bin/envoy');

function executable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * The Envoy binary to run: `explicitPath` (which must exist and be executable, or this throws), else
 * `envoy` on $PATH, else the copy hack/envoy/install.sh caches under .cache/envoy, else null.
 */
export function findEnvoy(explicitPath?: string, env: NodeJS.ProcessEnv = process.env, cached = CACHED_ENVOY): string | null {
  if (explicitPath !== undefined) {
    if (!executable(explicitPath)) throw new Error(`--envoy ${explicitPath}: not an executable file`);
    return path.resolve(explicitPath);
  }
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, 'envoy');
    if (executable(candidate)) return candidate;
  }
  return executable(cached) ? cached : null;
}

export interface StartEnvoyOptions {
  binary: string;
  /** Bootstrap config (YAML or JSON text). */
  config: string;
  log: Logger;
  /** Worker threads (Envoy's --concurrency); Envoy's default (one per core) when absent. */
  concurrency?: number;
  /** Envoy's own --log-level (default warn). */
  logLevel?: string;
  /** How long to wait for the admin API and every listener (default 30 s). */
  startTimeoutMs?: number;
}

export interface RunningEnvoy {
  /** http://host:port of the admin interface. */
  adminUrl: string;
  /** The port the first listener bound. */
  listenPort: number;
  /** Bound port of every listener, by listener name. */
  ports: Record<string, number>;
  pid: number;
  /** Resolves with the exit code (or null on a signal) when Envoy exits, for whatever reason. */
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after `graceMs`; removes the temporary config. */
  close(graceMs?: number): Promise<void>;
}

interface ListenerStatus {
  name: string;
  local_address?: { socket_address?: { port_value?: number } };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Listener names of a config, in order (YAML is a superset of JSON, so this reads both). */
function listenerNames(config: string): string[] {
  const parsed = YAML.parse(config) as { static_resources?: { listeners?: Array<{ name?: string }> } };
  return (parsed.static_resources?.listeners ?? []).map((l, i) => l.name ?? `listener-${i}`);
}

/**
 * Starts Envoy on `config` and resolves once its admin API answers and every static listener is
 * bound. Envoy's own log lines go to `log` (warn). Throws with the tail of Envoy's output if it exits
 * or does not come up in time.
 */
export async function startEnvoy(options: StartEnvoyOptions): Promise<RunningEnvoy> {
  const { log } = options;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-envoy-'));
  const configFile = path.join(dir, 'envoy.yaml');
  const adminFile = path.join(dir, 'admin-address');
  fs.writeFileSync(configFile, options.config);
  const names = listenerNames(options.config);

  const args = ['-c', configFile, '--disable-hot-restart', '--log-level', options.logLevel ?? 'warn', '--admin-address-path', adminFile];
  if (options.concurrency !== undefined) args.push('--concurrency', String(options.concurrency));
  const child = spawn(options.binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const tail: string[] = [];
  const onOutput = (data: Buffer) => {
    for (const line of data.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      tail.push(line);
      if (tail.length > 40) tail.shift();
      log.warn('envoy', { line });
    }
  };
  child.stdout.on('data', onOutput);
  child.stderr.on('data', onOutput);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', (err) => {
      tail.push(`spawn failed: ${err.message}`);
      resolve(null);
    });
  });
  let hasExited = false;
  void exited.then(() => (hasExited = true));
  const cleanup = () => fs.rmSync(dir, { recursive: true, force: true });

  const close = async (graceMs = 10_000) => {
    await stopChild(child, graceMs);
    cleanup();
  };

  try {
    const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
    const failure = (what: string) => new Error(`Envoy (${options.binary}) ${what}; its last output:\n${tail.join('\n')}`);
    let adminUrl = '';
    while (adminUrl === '') {
      if (hasExited) throw failure('exited while starting');
      if (Date.now() > deadline) throw failure('did not start its admin interface in time');
      const text = fs.existsSync(adminFile) ? fs.readFileSync(adminFile, 'utf8').trim() : '';
      if (text !== '') adminUrl = `http://${text}`;
      else await sleep(25);
    }
    let ports: Record<string, number> | undefined;
    while (!ports) {
      if (hasExited) throw failure('exited while starting');
      if (Date.now() > deadline) throw failure(`did not bind its listeners (${names.join(', ')}) in time`);
      try {
        const res = await fetch(`${adminUrl}/listeners?format=json`);
        const body = (await res.json()) as { listener_statuses?: ListenerStatus[] };
        const found: Record<string, number> = {};
        for (const l of body.listener_statuses ?? []) {
          const port = l.local_address?.socket_address?.port_value ?? 0;
          if (port > 0) found[l.name] = port;
        }
        if (names.every((n) => found[n] !== undefined)) ports = found;
      } catch {
        // The admin interface is not answering yet.
      }
      if (!ports) await sleep(25);
    }
    const listenPort = names.length > 0 ? ports[names[0]!]! : 0;
    log.info('envoy started', { pid: child.pid, adminUrl, ports });
    return { adminUrl, listenPort, ports, pid: child.pid ?? 0, exited, close };
  } catch (err) {
    await close(2000);
    throw err;
  }
}
