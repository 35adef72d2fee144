import { describe, it, expect } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { kvrouteBin, nodeBinary } from '../../test/support/node.ts';

interface GoldenVector {
  name: string;
  blockSize: number;
  hashSeed: string | null;
  extraKeysFormat: string;
  loraName: string | null;
  loraPath: string | null;
  cacheSalt: string | null;
  tokens: number[];
  hashes: string[];
  uint64: string[];
}

const golden = JSON.parse(readFileSync(new URL('../vllm/testdata/vllm-block-hashes.json', import.meta.url), 'utf8')) as {
  vectors: GoldenVector[];
};

function kvrouteHash(args: string[], stdin: string) {
  // Run to completion with stdin, so spawnSync rather than spawnKvroute (a long-running server's helper).
  const result = spawnSync(nodeBinary(), [kvrouteBin, 'hash', ...args], { input: stdin, encoding: 'utf8', timeout: 30_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function vector(name: string): GoldenVector {
  const v = golden.vectors.find((g) => g.name === name);
  if (!v) throw new Error(`golden vector "${name}" is missing`);
  return v;
}

describe('kvroute hash', () => {
  it('prints the digests and engine keys vLLM computed for a golden vector', () => {
    const v = vector('vocab above 2^16');
    const { status, stdout } = kvrouteHash(['--block-size', '16', '--hash-seed', '0'], JSON.stringify(v.tokens));
    expect(status).toBe(0);
    expect(JSON.parse(stdout)).toEqual({ hashes: v.hashes, uint64: v.uint64 });
  });

  it('applies LoRA (name and path) and cache_salt like vLLM 0.33, and an unset seed when --hash-seed is omitted', () => {
    const v = vector('lora and cache_salt');
    expect(v.hashSeed).toBeNull();
    const args = ['--block-size', '16', '--lora-name', v.loraName!, '--lora-path', v.loraPath!, '--cache-salt', v.cacheSalt!];
    const { status, stdout } = kvrouteHash(args, JSON.stringify(v.tokens));
    expect(status).toBe(0);
    expect(JSON.parse(stdout)).toEqual({ hashes: v.hashes, uint64: v.uint64 });
  });

  it('hashes a bare LoRA name as earlier vLLM did when no adapter path is given, and says so', () => {
    const v = vector('untagged lora');
    const { status, stdout, stderr } = kvrouteHash(['--hash-seed', '0', '--lora-name', v.loraName!], JSON.stringify(v.tokens));
    expect(status).toBe(0);
    expect(JSON.parse(stdout).hashes).toEqual(v.hashes);
    expect(stderr).toMatch(/--lora-path/);
  });

  it("pickles blocks like vLLM's default sha256 algorithm with --hash-algo sha256", () => {
    const v = vector('pickle token ids across every int opcode');
    const { status, stdout } = kvrouteHash(['--hash-seed', '0', '--hash-algo', 'sha256'], JSON.stringify(v.tokens));
    expect(status).toBe(0);
    expect(JSON.parse(stdout)).toEqual({ hashes: v.hashes, uint64: v.uint64 });
  });

  it.each([
    ['not JSON', 'tokens please', /not valid JSON/],
    ['an object', '{"tokens":[1]}', /JSON array/],
    ['a negative id', '[1,2,-3]', /index 2/],
    ['a string id', '[1,"2"]', /index 1/],
    ['an id above 2^53', '[9007199254740993]', /index 0/],
    ['nothing', '', /empty/],
  ])('rejects %s on stdin with exit code 2 and a message', (_name, stdin, message) => {
    const { status, stdout, stderr } = kvrouteHash(['--block-size', '16', '--hash-seed', '0'], stdin);
    expect(status).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toMatch(message);
  });

  it('rejects a bad --block-size and unknown options with exit code 2', () => {
    expect(kvrouteHash(['--block-size', '0'], '[1]').status).toBe(2);
    expect(kvrouteHash(['--no-such-flag'], '[1]').status).toBe(2);
  });

  it('prints help with the output contract', () => {
    const { status, stdout } = kvrouteHash(['--help'], '');
    expect(status).toBe(0);
    expect(stdout).toMatch(/--block-size/);
    expect(stdout).toMatch(/"uint64"/);
  });
});
