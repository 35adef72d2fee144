import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findEnvoy } from './envoy-process.ts';

describe('findEnvoy', () => {
  let dir: string;
  let onPath: string;
  let cached: string;
  let notExecutable: string;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-find-envoy-'));
    fs.mkdirSync(path.join(dir, 'bin'));
    fs.mkdirSync(path.join(dir, 'cache'));
    onPath = path.join(dir, 'bin', 'envoy');
    cached = path.join(dir, 'cache', 'envoy');
    notExecutable = path.join(dir, 'plain-file');
    for (const f of [onPath, cached]) fs.writeFileSync(f, '#!/bin/sh\n', { mode: 0o755 });
    fs.writeFileSync(notExecutable, 'x', { mode: 0o644 });
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('prefers the explicit path, then envoy on PATH, then the cached install, else null', () => {
    const env = { PATH: `/nonexistent${path.delimiter}${path.join(dir, 'bin')}` };
    expect(findEnvoy(cached, env, cached)).toBe(cached);
    expect(findEnvoy(undefined, env, cached)).toBe(onPath);
    expect(findEnvoy(undefined, { PATH: '/nonexistent' }, cached)).toBe(cached);
    expect(findEnvoy(undefined, { PATH: '' }, path.join(dir, 'missing'))).toBeNull();
  });

  it('refuses an explicit path that is not an executable file, naming it', () => {
    expect(() => findEnvoy(notExecutable, {}, cached)).toThrow(`--envoy ${notExecutable}: not an executable file`);
    expect(() => findEnvoy(path.join(dir, 'bin'), {}, cached)).toThrow('not an executable file');
  });
});
