import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, type EndpointPickerConfig } from '../api/endpoint-picker-config.ts';
import { createLogger } from '../common/log.ts';
import { loadConfigFile, parseConfigText, watchConfigFile } from './config-file.ts';

const config = (weight: number, apiVersion = 'llm-d.ai/v1alpha1') => `apiVersion: ${apiVersion}
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: ${weight}
  - pluginRef: kv-cache-utilization-scorer
`;

function recordingLog() {
  const records: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'debug', write: (line) => void records.push(JSON.parse(line) as Record<string, unknown>) });
  return { log, records };
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A directory laid out as a Kubernetes ConfigMap volume: router.yaml -> ..data/router.yaml, ..data -> ..<version>. */
class ConfigMapDir {
  readonly dir: string;
  readonly file: string;
  #version = 0;
  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-config-'));
    this.file = path.join(this.dir, 'router.yaml');
  }
  /** Writes a new version and swaps the ..data symlink to it atomically, as the kubelet does. */
  publish(text: string): void {
    const version = `..2026_01_01_00_00_0${this.#version++}.${process.pid}`;
    fs.mkdirSync(path.join(this.dir, version));
    fs.writeFileSync(path.join(this.dir, version, 'router.yaml'), text);
    fs.symlinkSync(version, path.join(this.dir, '..data_tmp'));
    fs.renameSync(path.join(this.dir, '..data_tmp'), path.join(this.dir, '..data'));
    if (!fs.existsSync(this.file)) fs.symlinkSync('..data/router.yaml', this.file);
  }
  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

describe('router config file', () => {
  let mount: ConfigMapDir;
  beforeEach(() => {
    mount = new ConfigMapDir();
  });
  afterEach(() => mount.remove());

  it('loads and fully validates a file, including plugin types and parameters', () => {
    mount.publish(config(2));
    expect(loadConfigFile(mount.file).schedulingProfiles[0]!.plugins[0]).toEqual({ pluginRef: 'queue-scorer', weight: 2 });
    mount.publish(config(2).replace('- type: kv-cache-utilization-scorer', '- {type: kv-scorer, name: kv-cache-utilization-scorer}'));
    expect(() => loadConfigFile(mount.file)).toThrow(ConfigError);
    expect(() => loadConfigFile(mount.file)).toThrow(`${mount.file}: plugins[1].type: unknown plugin type "kv-scorer"; supported types: `);
    expect(() => loadConfigFile(path.join(mount.dir, 'missing.yaml'))).toThrow(/missing\.yaml: cannot read the router config: ENOENT/);
  });

  it('warns about the deprecated apiVersion and about llm-d sections it ignores', () => {
    const { log, records } = recordingLog();
    parseConfigText(`${config(1, 'inference.networking.x-k8s.io/v1alpha1')}flowControl: {}\n`, '--config-text', log);
    expect(records.map((r) => [r.level, r.msg])).toEqual([
      ['warn', 'router config uses the deprecated apiVersion inference.networking.x-k8s.io/v1alpha1: write llm-d.ai/v1alpha1'],
      ['warn', 'router config section "flowControl" is llm-d\'s and has no effect in kvroute'],
    ]);
    expect(() => parseConfigText(config(1).replace('weight: 1', 'weight: -2'), '--config-text')).toThrow(
      '--config-text: schedulingProfiles[0].plugins[0].weight: expected number >= 0, got -2',
    );
  });

  it('picks up a changed ConfigMap (..data symlink swap), keeps the old config on an invalid one, and resumes on a valid one', async () => {
    const { log, records } = recordingLog();
    mount.publish(config(1));
    const seen: EndpointPickerConfig[] = [];
    const rejections: ConfigError[] = [];
    const watch = watchConfigFile(mount.file, (c) => seen.push(c), log, {
      initial: loadConfigFile(mount.file),
      onRejected: (err) => rejections.push(err),
    });
    try {
      mount.publish(config(5));
      await until('the new config', () => seen[0]);
      expect(seen[0]!.schedulingProfiles[0]!.plugins[0]!.weight).toBe(5);

      mount.publish(config(5).replace('type: queue-scorer', 'type: queue-scorer\n  parameters: {depth: 3}'));
      const rejected = await until('the rejection', () =>
        records.find((r) => r.msg === 'router config change rejected: keeping the config in force'),
      );
      expect(rejected).toMatchObject({
        level: 'error',
        file: mount.file,
        error: `${mount.file}: plugins[0].parameters.depth: unknown field`,
      });
      expect(seen).toHaveLength(1);
      expect(rejections.map((e) => e.issues)).toEqual([['plugins[0].parameters.depth: unknown field']]);

      mount.publish(config(7));
      await until('the next valid config', () => seen[1]);
      expect(seen[1]!.schedulingProfiles[0]!.plugins[0]!.weight).toBe(7);
      expect(seen).toHaveLength(2);
    } finally {
      watch.close();
    }
  });

  it('does not report a rewrite that changes only the bytes, not the config', async () => {
    const { log, records } = recordingLog();
    mount.publish(config(3));
    const seen: EndpointPickerConfig[] = [];
    const watch = watchConfigFile(mount.file, (c) => seen.push(c), log, { pollIntervalMs: 20 });
    try {
      mount.publish(`# a comment the operator added\n${config(3)}`);
      await until('the rewrite to be read', () =>
        records.find((r) => r.msg === 'router config file rewritten without a change to the config'),
      );
      expect(seen).toEqual([]);
      mount.publish(config(4));
      await until('the changed weight', () => seen[0]);
      expect(seen.map((c) => c.schedulingProfiles[0]!.plugins[0]!.weight)).toEqual([4]);
      expect(records.filter((r) => r.msg === 'router config reloaded')).toHaveLength(1);
    } finally {
      watch.close();
    }
  });

  it('keeps the config in force when applying a new one throws, and logs it', async () => {
    const { log, records } = recordingLog();
    mount.publish(config(1));
    const watch = watchConfigFile(
      mount.file,
      () => {
        throw new Error('scheduler could not start');
      },
      log,
    );
    try {
      mount.publish(config(2));
      const failure = await until('the failure', () =>
        records.find((r) => r.msg === 'router config change could not be applied: keeping the config in force'),
      );
      expect(failure).toMatchObject({ level: 'error', err: 'scheduler could not start' });
    } finally {
      watch.close();
    }
  });
});
