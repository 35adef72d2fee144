import { describe, it, expect } from '@jest/globals';
import v8 from 'node:v8';
import vm from 'node:vm';
import { mulberry32 } from '../common/random.ts';
import { loadModelTokenizer } from './model-tokenizer.ts';
import { isSafeCut, safeCuts } from './segment-cache.ts';
import { parseTokenizerSource } from './source.ts';

describe('safe cuts', () => {
  it('cuts only between a newline and a letter or between a letter and a space, at least chunkChars after the previous cut', () => {
    const text = 'aaaa\n1111\n\nbbbb Éclair\nçava  x\n 𝐀 z\t\n';
    const cuts = safeCuts(text, 1);
    for (const c of cuts)
      expect(text[c - 1] === '\n' ? /\p{L}/u.test(text.slice(c, c + 2)) : text[c] === ' ' && /\p{L}$/u.test(text.slice(c - 2, c))).toBe(
        true,
      );
    // Every safe place, with chunkChars 1: "\n|bbbb", "b| É", "\n|ç", "a| ", "𝐀| " (after a surrogate pair).
    expect(cuts).toEqual([11, 15, 23, 27, 34]);
    expect(safeCuts(text, 12).every((c, i, all) => c - (i === 0 ? 0 : all[i - 1]!) >= 12)).toBe(true);
    expect(safeCuts('short\ntext', 100)).toEqual([]);
  });

  it('never cuts before a space that follows a non-letter, nor between a space and a letter', () => {
    for (const [text, at] of [
      ['1 2', 1],
      ['a\t b', 2],
      ['a b', 2],
      ['. x', 1],
      ['a\n1', 2],
      ['a\n b', 2],
    ] as const) {
      expect({ text, safe: isSafeCut(text, at) }).toEqual({ text, safe: false });
    }
    expect(isSafeCut('a b', 1)).toBe(true);
    expect(isSafeCut('a\nb', 2)).toBe(true);
  });

  it('cuts a stretch of text the same way whatever precedes it, once the first cut in it coincides', () => {
    const random = mulberry32(3);
    const vocabulary = ['cache', 'router', 'gateway', 'token', 'block', 'prefix', 'model', 'pod'];
    const body = Array.from({ length: 4000 }, () => vocabulary[Math.floor(random() * vocabulary.length)]).join(' ');
    const cutsIn = (head: string) =>
      safeCuts(head + body, 256)
        .map((c) => c - head.length)
        .filter((c) => c > 2048);
    // Heads of different lengths shift every position; the cuts, relative to the body, are the same.
    expect(cutsIn('Request 7: ')).toEqual(cutsIn('Request 12345: '));
    expect(cutsIn('')).toEqual(cutsIn('A much longer system prompt that differs entirely: '));
    expect(cutsIn('').length).toBeGreaterThan(10);
  });

  it('finds cuts whose halves tokenize to the whole, where a naive cut would not', async () => {
    for (const name of ['llama3_1', 'qwen3', 'gptoss']) {
      const t = await loadModelTokenizer(name, parseTokenizerSource(name), { maxBytes: 0 });
      // Control: cutting after a space (or, but for Qwen's one-digit numbers, inside a digit run) changes the ids.
      if (name !== 'qwen3') expect([...t.encode('12'), ...t.encode('345')]).not.toEqual(t.encode('12345'));
      expect([...t.encode('hello'), ...t.encode(' world')]).toEqual(t.encode('hello world'));
      expect([...t.encode('hello '), ...t.encode('world')]).not.toEqual(t.encode('hello world'));
      const text = "Total: 12345\n\n  Résumé of the day\nnext line 678\nÉtape deux  it's   done\n𝐀 bold e\u0301 x 你好 世界\n";
      const cuts = safeCuts(text, 1);
      expect(cuts.length).toBeGreaterThan(10);
      for (const cut of cuts)
        expect({ name, cut, ids: [...t.encode(text.slice(0, cut)), ...t.encode(text.slice(cut))] }).toEqual({
          name,
          cut,
          ids: t.encode(text),
        });
    }
  });
});

describe('segment cache memory', () => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const random = mulberry32(11);
  const vocabulary = ['cache', 'router', 'gateway', 'token', 'block', 'prefix', 'model', 'pod', 'reconfiguration'];
  const word = () => vocabulary[Math.floor(random() * vocabulary.length)]!;
  /** A word of 14 random letters: new to the pre-token cache, and long enough to be a view when sliced. */
  const newWord = () => Array.from({ length: 14 }, () => String.fromCharCode(97 + Math.floor(random() * 26))).join('');
  const text = (words: number) => Array.from({ length: words }, (_, i) => (i % 50 === 0 ? newWord() : word())).join(' ');

  // Prompts of ~700 KB sharing all but a short tail, as long-context traffic does: the tail's pieces
  // (and new words) are cached; as views into the prompt they would keep every prompt alive.
  it.each([
    ['segment and pre-token caches', undefined],
    ['pre-token cache alone', 0],
  ])('keeps no prompt alive through the entries of its %s', async (_, maxBytes) => {
    const t = await loadModelTokenizer('qwen3', parseTokenizerSource('qwen3'), { maxBytes });
    const shared = text(100_000);
    t.encode(shared);
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 20; i++) t.encode(`${shared} Question ${i}: ${text(2000)}`);
    gc();
    // Twenty prompts kept alive would be 14 MB; their tails' cache entries are about 1 MB.
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(5_000_000);
  });
});
