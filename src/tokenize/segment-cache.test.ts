import { describe, it, expect } from '@jest/globals';
import { loadModelTokenizer } from './model-tokenizer.ts';
import { safeCuts } from './segment-cache.ts';
import { parseTokenizerSource } from './source.ts';

describe('safe cuts', () => {
  it('cuts only between a newline and a letter, at least chunkChars after the previous cut', () => {
    const text = 'aaaa\n1111\n\nbbbb\n Éclair\nçava\n';
    const cuts = safeCuts(text, 3);
    for (const c of cuts) {
      expect(text[c - 1]).toBe('\n');
      expect(text[c]).toMatch(/\p{L}/u);
    }
    expect(cuts).toEqual([11, 24]);
    expect(safeCuts('short\ntext', 100)).toEqual([]);
  });

  it('finds cuts whose halves tokenize to the whole, where a naive cut would not', async () => {
    const t = await loadModelTokenizer('llama', parseTokenizerSource('llama3_1'), { maxBytes: 0 });
    // Control: cutting inside a digit run or before a space changes the ids, so equality below means something.
    expect([...t.encode('12'), ...t.encode('345')]).not.toEqual(t.encode('12345'));
    expect([...t.encode('hello'), ...t.encode(' world')]).toEqual(t.encode('hello world'));
    expect([...t.encode('hello '), ...t.encode('world')]).not.toEqual(t.encode('hello world'));
    const text = 'Total: 12345\n\n  Résumé of the day\nnext line 678\nÉtape deux\n';
    for (const cut of safeCuts(text, 1)) {
      expect([...t.encode(text.slice(0, cut)), ...t.encode(text.slice(cut))]).toEqual(t.encode(text));
    }
  });
});
