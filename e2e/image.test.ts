// The container image without a Docker engine: the Dockerfile's invariants (Node 24, production
// dependencies only, a numeric non-root USER), and the image's /app assembled exactly as its COPY lines
// and .dockerignore say (npm ci --omit=dev emulated by pruning a hard-linked copy of node_modules), from
// which every `kvroute` subcommand starts, as UID 65532 in group 0 when the test runs as root, and the
// indexer serves with its native zeromq addon, gRPC protos and tokenizer worker.

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stopChild } from '../src/common/child-process.ts';
import { nodeBinary } from '../test/support/node.ts';
import { repoRoot as ROOT } from '../test/support/repo-root.ts';
import { until } from '../test/support/until.ts';

/** Subcommands the image must run at least; every one `kvroute --help` lists is run too. */
const CORE_SUBCOMMANDS = ['hash', 'indexer', 'sim', 'router', 'demo', 'operator'];
/** The UID and GID the image declares; OpenShift replaces the UID and keeps group 0. */
const IMAGE_UID = 65532;

interface Instruction {
  op: string;
  args: string;
  line: number;
}

/** Dockerfile instructions with comments dropped and `\` continuations joined. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!.trim();
    const start = i + 1;
    if (line === '' || line.startsWith('#')) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) line = `${line.slice(0, -1).trim()} ${lines[++i]!.trim()}`;
    const m = /^(\S+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`Dockerfile line ${start}: cannot parse "${line}"`);
    out.push({ op: m[1]!.toUpperCase(), args: m[2]!, line: start });
  }
  return out;
}

interface Stage {
  name: string;
  base: string;
  instructions: Instruction[];
}

function stagesOf(instructions: Instruction[]): Stage[] {
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m) throw new Error(`Dockerfile line ${ins.line}: cannot parse FROM ${ins.args}`);
      stages.push({ base: m[1]!, name: m[2] ?? String(stages.length), instructions: [] });
    } else {
      if (stages.length === 0) throw new Error(`Dockerfile line ${ins.line}: ${ins.op} before FROM`);
      stages.at(-1)!.instructions.push(ins);
    }
  }
  return stages;
}

/** .dockerignore as Docker reads it: patterns relative to the context, `**` any depth, last match wins, `!` re-includes. */
function dockerignore(text: string): (rel: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = (negate ? l.slice(1) : l).replace(/^\/+|\/+$/g, '');
      const source = pattern
        .split('/')
        .map((part) =>
          part === '**'
            ? '.*'
            : part
                .replace(/[.+^${}()|[\]\\]/g, '\\$&')
                .replace(/\*/g, '[^/]*')
                .replace(/\?/g, '[^/]'),
        )
        .join('/')
        .replace(/\.\*\//g, '(?:.*/)?');
      return { negate, re: new RegExp(`^${source}$`) };
    });
  return (rel) => {
    // A path is excluded when it or one of its parent directories matches.
    const parts = rel.split('/');
    let excluded = false;
    for (const r of rules) {
      for (let n = 1; n <= parts.length; n++) {
        if (r.re.test(parts.slice(0, n).join('/'))) {
          excluded = !r.negate;
          break;
        }
      }
    }
    return excluded;
  };
}

/**
 * Copies `src` (a file or a tree) to `dest`. Files under node_modules are hard-linked instead (hundreds
 * of megabytes, instant); nothing writes to them in place (npm replaces its hidden lockfile, which is
 * copied). Everything else is copied, so no tool run in the copy can write through to the checkout.
 */
function linkTree(src: string, dest: string, skip: (abs: string) => boolean = () => false): void {
  if (skip(src)) return;
  const st = fs.lstatSync(src);
  if (st.isSymbolicLink()) {
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.symlinkSync(fs.readlinkSync(src), dest);
  } else if (st.isDirectory()) {
    fs.mkdirSync(dest, { recursive: true });
    for (const entry of fs.readdirSync(src)) linkTree(path.join(src, entry), path.join(dest, entry), skip);
  } else {
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    if (src.includes(`${path.sep}node_modules${path.sep}`) && path.basename(src) !== '.package-lock.json') fs.linkSync(src, dest);
    else fs.copyFileSync(src, dest);
  }
}

function run(cmd: string, args: string[], options: { cwd: string; input?: string; env?: NodeJS.ProcessEnv }) {
  return spawnSync(cmd, args, {
    cwd: options.cwd,
    input: options.input,
    env: options.env ?? process.env,
    encoding: 'utf8',
    timeout: 120_000,
  });
}

const dockerfile = parseDockerfile(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
const stages = stagesOf(dockerfile);
const finalStage = stages.at(-1)!;
const ignored = dockerignore(fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8'));

describe('Dockerfile invariants', () => {
  it('builds every stage FROM node:24', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const s of stages) expect(s.base).toMatch(/^node:24(-[a-z0-9.-]+)?(@sha256:[a-f0-9]{64})?$/);
  });

  it('installs production dependencies only, from the lockfile, without install scripts', () => {
    const installs = dockerfile.filter((i) => i.op === 'RUN' && /\bnpm\b/.test(i.args));
    expect(installs.length).toBeGreaterThan(0);
    for (const i of installs) {
      expect(i.args).toMatch(/\bnpm ci\b/);
      expect(i.args).toContain('--omit=dev');
      expect(i.args).toContain('--ignore-scripts');
    }
  });

  it('runs as a numeric non-root USER in group 0, with the kvroute entry point', () => {
    const users = finalStage.instructions.filter((i) => i.op === 'USER');
    expect(users).toHaveLength(1);
    const m = /^(\d+)(?::(\d+))?$/.exec(users[0]!.args);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBe(IMAGE_UID);
    expect(m![2]).toBe('0');
    const entry = finalStage.instructions.find((i) => i.op === 'ENTRYPOINT');
    expect(JSON.parse(entry!.args)).toEqual(['node', '/app/bin/kvroute.js']);
  });

  it('makes the application tree readable, not writable, by any UID', () => {
    const chmod = dockerfile.find((i) => i.op === 'RUN' && /^chmod\b/.test(i.args));
    expect(chmod?.args).toMatch(/^chmod -R a\+rX,go-w \/app$/);
  });

  it('keeps caches, dependencies, tests and VCS data out of the build context', () => {
    for (const p of [
      '.git/HEAD',
      '.cache/helm/bin/helm',
      'node_modules/zod/package.json',
      'coverage/lcov.info',
      'bench/results/x.json',
      'src/sim/engine.test.ts',
      'src/sim/testdata/golden-events.json',
      'e2e/image.test.ts',
    ]) {
      expect([p, ignored(p)]).toEqual([p, true]);
    }
    for (const p of [
      'package.json',
      'package-lock.json',
      'bin/kvroute.js',
      'src/cli/main.ts',
      'src/envoy/proto/envoy/service/ext_proc/v3/external_processor.proto',
      'src/tokenize/worker.ts',
    ]) {
      expect([p, ignored(p)]).toEqual([p, false]);
    }
  });
});

/** Assembles every stage's filesystem under `dir`, following FROM/WORKDIR/COPY/RUN as Docker would. */
function assemble(dir: string): string {
  const roots = new Map<string, string>();
  for (const [index, stage] of stages.entries()) {
    const root = path.join(dir, `stage-${index}`);
    fs.mkdirSync(root, { recursive: true });
    roots.set(stage.name, root);
    let workdir = '/';
    const inStage = (p: string) => path.join(root, path.posix.resolve(workdir, p));
    for (const ins of stage.instructions) {
      if (ins.op === 'WORKDIR') {
        workdir = path.posix.resolve(workdir, ins.args);
        fs.mkdirSync(inStage('.'), { recursive: true });
      } else if (ins.op === 'COPY') {
        const words = ins.args.split(/\s+/);
        const flags = words.filter((w) => w.startsWith('--'));
        const paths = words.filter((w) => !w.startsWith('--'));
        const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
        if (flags.some((f) => !f.startsWith('--from=')))
          throw new Error(`Dockerfile line ${ins.line}: COPY flag not emulated: ${flags.join(' ')}`);
        const dest = paths.pop()!;
        const destIsDir = dest.endsWith('/') || paths.length > 1;
        for (const src of paths) {
          const fromRoot = from === undefined ? ROOT : roots.get(from);
          if (fromRoot === undefined) throw new Error(`Dockerfile line ${ins.line}: no stage ${from}`);
          const abs = path.join(fromRoot, src);
          if (from === undefined && ignored(src)) throw new Error(`Dockerfile line ${ins.line}: ${src} is excluded by .dockerignore`);
          if (!fs.existsSync(abs)) throw new Error(`Dockerfile line ${ins.line}: COPY source ${src} does not exist`);
          const target = fs.statSync(abs).isDirectory() || !destIsDir ? inStage(dest) : path.join(inStage(dest), path.basename(src));
          const skip = from === undefined ? (p: string) => ignored(path.relative(ROOT, p)) : undefined;
          linkTree(abs, target, skip);
        }
      } else if (ins.op === 'RUN' && /^npm ci\b/.test(ins.args)) {
        // npm ci --omit=dev, offline: the repository's node_modules (installed from the same lockfile),
        // hard-linked, then pruned of dev dependencies.
        const modules = inStage('node_modules');
        linkTree(path.join(ROOT, 'node_modules'), modules);
        const r = run('npm', ['prune', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: inStage('.') });
        if (r.status !== 0) throw new Error(`npm prune --omit=dev failed: ${r.stderr}`);
      } else if (ins.op === 'RUN' && /^chmod\b/.test(ins.args)) {
        // Not applied (the files are links to the checkout); the subcommands run as a non-root UID below.
      } else if (ins.op === 'RUN') {
        throw new Error(`Dockerfile line ${ins.line}: RUN ${ins.args} is not emulated by e2e/image.test.ts; teach assemble() what it does`);
      }
    }
  }
  return roots.get(finalStage.name)!;
}

describe('the image, assembled from the Dockerfile', () => {
  let dir: string;
  let image: string;
  let app: string;
  const asRoot = process.getuid?.() === 0;
  /** node from the image's point of view: as UID 65532 in group 0 when the test can switch users. */
  const nodeInImage = (args: string[], input?: string) =>
    asRoot
      ? run('setpriv', [`--reuid=${IMAGE_UID}`, '--regid=0', '--clear-groups', '--', nodeBinary(), ...args], {
          cwd: app,
          input,
          env: imageEnv(),
        })
      : run(nodeBinary(), args, { cwd: app, input, env: imageEnv() });
  const imageEnv = (): NodeJS.ProcessEnv => ({ PATH: process.env.PATH, NODE_ENV: 'production', HOME: os.tmpdir() });

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-image-'));
    // mkdtemp makes the directory 0700; the image user must be able to traverse it.
    fs.chmodSync(dir, 0o755);
    image = assemble(dir);
    app = path.join(image, 'app');
  }, 120_000);

  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('holds package.json, bin, src and production dependencies only: no dev dependencies, tests or golden data', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      devDependencies: Record<string, string>;
    };
    expect(fs.readdirSync(app).sort()).toEqual(['bin', 'node_modules', 'package.json', 'src']);
    for (const dep of Object.keys(pkg.dependencies))
      expect([dep, fs.existsSync(path.join(app, 'node_modules', dep, 'package.json'))]).toEqual([dep, true]);
    // A dev dependency may still be present when a production dependency needs it too; these are dev-only.
    for (const dep of ['typescript', 'jest', 'eslint', '@swc/core', 'prettier', 'knip', 'node'])
      expect([dep, fs.existsSync(path.join(app, 'node_modules', dep))]).toEqual([dep, false]);
    const shipped: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else shipped.push(path.relative(app, p));
      }
    };
    walk(path.join(app, 'src'));
    expect(shipped.filter((f) => f.endsWith('.test.ts') || f.includes('/testdata/'))).toEqual([]);
    expect(shipped).toContain('src/envoy/proto/envoy/service/ext_proc/v3/external_processor.proto');
    expect(shipped).toContain('src/indexer/grpc/indexer.proto');
    expect(shipped).toContain('src/tokenize/worker.ts');
  });

  it('runs node as the image user: UID 65532 in group 0 (when the test runs as root and can switch)', () => {
    const r = nodeInImage(['-e', 'console.log(process.getuid(), process.getgid())']);
    expect(r.stdout.trim()).toBe(asRoot ? `${IMAGE_UID} 0` : `${process.getuid?.()} ${process.getgid?.()}`);
  });

  it('prints help for kvroute and every subcommand', () => {
    const top = nodeInImage(['bin/kvroute.js', '--help']);
    expect(top.stderr).toBe('');
    expect(top.status).toBe(0);
    const listed = top.stdout
      .slice(top.stdout.indexOf('Commands:'))
      .split('\n')
      .map((l) => /^ {2}([a-z][a-z-]*)\b/.exec(l)?.[1])
      .filter((c): c is string => c !== undefined && c !== 'help');
    expect(listed).toEqual(expect.arrayContaining(CORE_SUBCOMMANDS));
    for (const sub of listed) {
      const r = nodeInImage(['bin/kvroute.js', sub, '--help']);
      expect({ sub, status: r.status, stderr: r.stderr }).toEqual({ sub, status: 0, stderr: '' });
      expect(r.stdout).toMatch(/^Usage: /);
    }
  }, 120_000);

  it('computes block hashes with `kvroute hash`', () => {
    const r = nodeInImage(['bin/kvroute.js', 'hash', '--block-size', '4', '--hash-seed', '0'], '[1,2,3,4,5,6,7,8]');
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { hashes: string[] };
    expect(out.hashes).toHaveLength(2);
  }, 30_000);

  it('runs the indexer: zeromq native addon bound, gRPC protos loaded, tokenizer worker answering', async () => {
    const child = asRoot
      ? spawn(
          'setpriv',
          [
            `--reuid=${IMAGE_UID}`,
            '--regid=0',
            '--clear-groups',
            '--',
            nodeBinary(),
            'bin/kvroute.js',
            'indexer',
            '--zmq-bind',
            'tcp://127.0.0.1:*',
            '--http-port',
            '0',
            '--grpc-port',
            '0',
            '--listen-host',
            '127.0.0.1',
            '--tokenizer-workers',
            '1',
          ],
          { cwd: app, env: imageEnv() },
        )
      : spawn(
          nodeBinary(),
          [
            'bin/kvroute.js',
            'indexer',
            '--zmq-bind',
            'tcp://127.0.0.1:*',
            '--http-port',
            '0',
            '--grpc-port',
            '0',
            '--listen-host',
            '127.0.0.1',
            '--tokenizer-workers',
            '1',
          ],
          { cwd: app, env: imageEnv() },
        );
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    try {
      const ready = await until(
        () => {
          if (child.exitCode !== null) return { exited: child.exitCode };
          const line = output.split('\n').find((l) => l.includes('"indexer ready"'));
          return line ? (JSON.parse(line) as { httpPort: number; grpcPort: number; zmqBound: string[] }) : undefined;
        },
        { message: 'the indexer to log "indexer ready"', timeoutMs: 60_000, intervalMs: 100 },
      );
      if ('exited' in ready) throw new Error(`indexer exited ${ready.exited}: ${output}`);
      expect(ready.zmqBound[0]).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
      expect(ready.grpcPort).toBeGreaterThan(0);
      const res = await fetch(`http://127.0.0.1:${ready.httpPort}/v1/tokenize`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'Qwen/Qwen3-0.6B', prompt: 'The image runs the tokenizer in a worker thread.' }),
      });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { count: number }).count).toBeGreaterThan(5);
      const metrics = await (await fetch(`http://127.0.0.1:${ready.httpPort}/metrics`)).text();
      expect(metrics).toContain('kvroute_indexer_keys');
    } finally {
      await stopChild(child, 10_000);
    }
    expect(output).not.toMatch(/EACCES|permission denied/i);
  }, 120_000);
});
