import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadJsonlWorkload } from './jsonl.ts';

const dir = mkdtempSync(join(tmpdir(), 'jsonl-workload-'));
let n = 0;
function file(lines: string[]): string {
  const path = join(dir, `w${n++}.jsonl`);
  writeFileSync(path, lines.join('\n'));
  return path;
}

describe('loadJsonlWorkload', () => {
  it('reads text, token-id and chat requests in order with their fields', async () => {
    const path = file([
      '{"t_ms": 0, "model": "m", "prompt": "hello there"}',
      '',
      '{"t_ms": 5, "model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64, "session": "u1"}',
      '{"t_ms": 5, "prompt": [1, 2, 3], "group": "g"}',
    ]);
    const requests = await loadJsonlWorkload(path, { model: 'default', defaultMaxTokens: 32, maxOutputTokens: 50 });
    expect(requests).toEqual([
      { tMs: 0, model: 'm', prompt: 'hello there', maxTokens: 32 },
      { tMs: 5, model: 'm', messages: [{ role: 'user', content: 'hi' }], maxTokens: 50, session: 'u1' },
      { tMs: 5, model: 'default', tokens: [1, 2, 3], maxTokens: 32, group: 'g' },
    ]);
  });

  it('stops after `limit` requests', async () => {
    const path = file(['{"prompt": "a"}', '{"prompt": "b"}', '{"prompt": "c"}']);
    expect((await loadJsonlWorkload(path, { model: 'm', limit: 2 })).map((r) => r.prompt)).toEqual(['a', 'b']);
  });

  it('names the line and the field of every kind of bad line', async () => {
    const cases: Array<[string[], string]> = [
      [
        ['{"t_ms": 0, "model": "m", "prompt": "a"}', '{"t_ms": "soon", "model": "m", "prompt": "b"}'],
        ':2: t_ms: expected the arrival offset in milliseconds',
      ],
      [['{"t_ms": 0, "model": "m"}'], ':1: prompt: expected exactly one of prompt or messages'],
      [
        ['{"model": "m", "prompt": "a", "messages": [{"role": "user", "content": "x"}]}'],
        ':1: messages: expected exactly one of prompt or messages',
      ],
      [['{"model": "m", "messages": [{"role": "", "content": "x"}]}'], ':1: messages.0.role: expected a non-empty role'],
      [['{"model": "m", "prompt": "a", "max_tokens": 0}'], ':1: max_tokens: must be at least 1'],
      [['{"model": "m", "prompt": "a", "max_token": 5}'], ':1: (line): Unrecognized key: "max_token"'],
      [['{"model": "m", "prompt": [1, -2]}'], ':1: prompt.1: token ids are >= 0'],
      [['{"model": "m", "prompt": 7}'], ':1: prompt: expected a string or an array of token ids'],
      [['{"prompt": "a"}'], ':1: model: required (no default model was given)'],
      [
        ['{"t_ms": 9, "model": "m", "prompt": "a"}', '{"t_ms": 3, "model": "m", "prompt": "b"}'],
        ":2: t_ms: 3 is earlier than the previous request's 9",
      ],
      [['{"model": "m", "prompt": "a"}', 'not json'], ':2: not valid JSON'],
      [['[1, 2]'], ':1: (line): expected one JSON object per line'],
    ];
    for (const [lines, message] of cases) {
      const path = file(lines);
      await expect(loadJsonlWorkload(path)).rejects.toThrow(`${path}${message}`);
    }
  });

  it('rejects an empty file', async () => {
    await expect(loadJsonlWorkload(file(['', '']), { model: 'm' })).rejects.toThrow('no requests');
  });
});
