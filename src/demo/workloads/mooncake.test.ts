import { describe, expect, it } from '@jest/globals';
import { createReadStream, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { computeOracle } from '../oracle.ts';
import { expandMooncakePrompt, loadMooncakeTrace } from './mooncake.ts';
import { TOKEN_ID_MAX, TOKEN_ID_MIN } from './tokens.ts';

const SYNTHETIC = '/work/shared/traces/mooncake-synthetic.jsonl';
const dir = mkdtempSync(join(tmpdir(), 'mooncake-'));

function file(name: string, lines: unknown[]): string {
  const path = join(dir, name);
  writeFileSync(path, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return path;
}

async function firstLines(
  path: string,
  n: number,
): Promise<Array<{ timestamp: number; input_length: number; output_length: number; hash_ids: number[] }>> {
  const out = [];
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  for await (const line of lines) {
    out.push(JSON.parse(line));
    if (out.length === n) break;
  }
  lines.close();
  return out;
}

describe('Mooncake trace expansion', () => {
  it('expands equal hash ids into equal 512-token blocks and cuts the last block to input_length', () => {
    const a = expandMooncakePrompt({ input_length: 1100, hash_ids: [7, 8, 9] });
    const b = expandMooncakePrompt({ input_length: 600, hash_ids: [7, 10] });
    expect(a).toHaveLength(1100);
    expect(b).toHaveLength(600);
    expect(b.slice(0, 512)).toEqual(a.slice(0, 512));
    expect(b.slice(512)).not.toEqual(a.slice(512, 600));
    // The cut block is the first tokens of the id's full block.
    const full9 = expandMooncakePrompt({ input_length: 1536, hash_ids: [1, 2, 9] }).slice(1024);
    expect(a.slice(1024)).toEqual(full9.slice(0, 76));
    expect(a.every((t) => Number.isInteger(t) && t >= TOKEN_ID_MIN && t < TOKEN_ID_MAX)).toBe(true);
  });

  it('gives other tokens for another seed, same reuse', () => {
    const r = { input_length: 512, hash_ids: [3] };
    expect(expandMooncakePrompt(r, 1)).not.toEqual(expandMooncakePrompt(r, 0));
    expect(expandMooncakePrompt(r, 1)).toEqual(expandMooncakePrompt(r, 1));
  });

  it('loads a hand-made trace: timing, outputs, caps and the hand-computed bound', async () => {
    const path = file('small.jsonl', [
      { timestamp: 10, input_length: 1024, output_length: 5, hash_ids: [0, 1] },
      '',
      { timestamp: 25, input_length: 700, output_length: 0, hash_ids: [0, 2] },
      { timestamp: 25, input_length: 1030, output_length: 900, hash_ids: [0, 1, 3] },
    ]);
    const { requests, truncated } = await loadMooncakeTrace(path, { model: 'm', maxOutputTokens: 100 });
    expect(truncated).toBe(0);
    expect(requests.map((r) => [r.tMs, r.tokens!.length, r.maxTokens])).toEqual([
      [0, 1024, 5],
      [15, 700, 1],
      [15, 1030, 100],
    ]);
    expect(requests.every((r) => r.model === 'm')).toBe(true);
    // 16-token blocks: request 2 reuses block id 0 (512 tokens = 32 blocks); request 3 reuses ids 0 and 1
    // (1,024 tokens = 64 blocks).
    expect(
      computeOracle(
        requests.map((r) => r.tokens!),
        16,
      ).hitTokens,
    ).toEqual([0, 512, 1024]);
  });

  it('stops after `limit` requests and cuts prompts to maxInputTokens, counting them', async () => {
    const path = file('limit.jsonl', [
      { timestamp: 0, input_length: 1024, output_length: 5, hash_ids: [0, 1] },
      { timestamp: 1, input_length: 300, output_length: 5, hash_ids: [4] },
      { timestamp: 2, input_length: 300, output_length: 5, hash_ids: [5] },
    ]);
    const { requests, truncated } = await loadMooncakeTrace(path, { model: 'm', limit: 2, maxInputTokens: 600 });
    expect(requests.map((r) => r.tokens!.length)).toEqual([600, 300]);
    expect(truncated).toBe(1);
    expect(requests[0]!.tokens!.slice(0, 600)).toEqual(expandMooncakePrompt({ input_length: 1024, hash_ids: [0, 1] }).slice(0, 600));
  });

  // The trace's first reuse of a hash id is on line 50.
  it('replays the first lines of the public synthetic trace with exact lengths and shared blocks', async () => {
    const records = await firstLines(SYNTHETIC, 80);
    const { requests } = await loadMooncakeTrace(SYNTHETIC, { model: 'm', limit: 80 });
    expect(requests).toHaveLength(80);
    const blockOf = new Map<number, string>();
    let shared = 0;
    records.forEach((rec, i) => {
      const tokens = requests[i]!.tokens!;
      expect(tokens).toHaveLength(rec.input_length);
      expect(requests[i]!.tMs).toBe(rec.timestamp - records[0]!.timestamp);
      expect(requests[i]!.maxTokens).toBe(Math.max(1, rec.output_length));
      rec.hash_ids.forEach((id, b) => {
        const start = b * 512;
        const block = tokens.slice(start, Math.min(start + 512, rec.input_length)).join(',');
        const seen = blockOf.get(id);
        if (seen !== undefined) {
          shared++;
          const n = Math.min(seen.length, block.length);
          expect(block.slice(0, n)).toBe(seen.slice(0, n));
        }
        if (seen === undefined || block.length > seen.length) blockOf.set(id, block);
      });
    });
    expect(shared).toBeGreaterThan(0);
  });

  it('names the line and the field of a bad record', async () => {
    const cases: Array<[unknown[], string]> = [
      [
        [
          { timestamp: 0, input_length: 10, output_length: 1, hash_ids: [0] },
          { timestamp: 1, input_length: 'x', output_length: 1, hash_ids: [0] },
        ],
        ':2: input_length: expected the prompt length in tokens',
      ],
      [[{ timestamp: 0, input_length: 10, output_length: -1, hash_ids: [0] }], ':1: output_length: must be >= 0'],
      [[{ timestamp: 0, input_length: 10, output_length: 1, hash_ids: [0, -3] }], ':1: hash_ids.1: must be >= 0'],
      [
        [{ timestamp: 0, input_length: 1000, output_length: 1, hash_ids: [0] }],
        ':1: hash_ids: expected ceil(input_length / 512) = 2 ids for input_length 1000, got 1',
      ],
      [[{ input_length: 10, output_length: 1, hash_ids: [0] }], ':1: timestamp: expected milliseconds'],
      [
        [
          { timestamp: 5, input_length: 10, output_length: 1, hash_ids: [0] },
          { timestamp: 4, input_length: 10, output_length: 1, hash_ids: [1] },
        ],
        ':2: timestamp: 4 is earlier than',
      ],
      [['{"timestamp": 0,'], ':1: not valid JSON'],
    ];
    for (const [i, [lines, message]] of cases.entries()) {
      const path = file(`bad${i}.jsonl`, lines);
      await expect(loadMooncakeTrace(path, { model: 'm' })).rejects.toThrow(`${path}${message}`);
    }
    await expect(loadMooncakeTrace(file('empty.jsonl', ['']), { model: 'm' })).rejects.toThrow('no requests');
    await expect(loadMooncakeTrace(join(dir, 'missing.jsonl'), { model: 'm' })).rejects.toThrow('cannot read the workload file');
  });
});
