import { beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import fs from 'node:fs';
import path from 'node:path';
import { TokenizerLoader } from '@lenml/tokenizers';
import { createPreTokenEncoder } from './pretoken-encoder.ts';
import { parseTokenizerSource } from './source.ts';

type Library = ReturnType<typeof TokenizerLoader.fromPreTrained>;

function readModel(name: string): { tokenizerJSON: Record<string, unknown>; tokenizerConfig: Record<string, unknown> } {
  const source = parseTokenizerSource(`npm:${name}`);
  if (source.kind !== 'npm') throw new Error('expected an npm source');
  const read = (file: string) => JSON.parse(fs.readFileSync(path.join(source.dir, file), 'utf8')) as Record<string, unknown>;
  return { tokenizerJSON: read('tokenizer.json'), tokenizerConfig: read('tokenizer_config.json') };
}

describe('pre-token encoder', () => {
  let files: ReturnType<typeof readModel>;
  let library: Library;
  beforeAll(() => {
    files = readModel('qwen3');
    library = TokenizerLoader.fromPreTrained(files);
  });
  const libraryIds = (text: string) => library.encode(text, { add_special_tokens: false });

  it('serves repeated words from its cache and encodes them as the library does', () => {
    const encoder = createPreTokenEncoder(library, files.tokenizerJSON)!;
    const text = 'the cache keeps the words the cache has seen';
    expect(encoder.encode(text)).toEqual(libraryIds(text));
    // Pre-tokens carry their leading space: "the", " cache", " keeps", " the", " words", " the", " cache", " has", " seen".
    expect(encoder.stats).toMatchObject({ hits: 2, misses: 7 });
    expect(encoder.encode(text)).toEqual(libraryIds(text));
    expect(encoder.stats).toMatchObject({ hits: 11, misses: 7, size: 7 });
  });

  it('stays exact with a cache too small to hold one sentence, and with none', () => {
    const tiny = createPreTokenEncoder(library, files.tokenizerJSON, { maxEntries: 3 })!;
    const none = createPreTokenEncoder(library, files.tokenizerJSON, { maxEntries: 0 })!;
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 80 }), fc.string({ unit: 'binary', maxLength: 20 }), (a, b) => {
        const text = `${a} ${b} ${a}`;
        const want = libraryIds(text);
        expect(tiny.encode(text)).toEqual(want);
        expect(none.encode(text)).toEqual(want);
      }),
      { numRuns: 200 },
    );
    expect(tiny.stats.size).toBeLessThanOrEqual(3);
    expect(none.stats).toMatchObject({ hits: 0, size: 0 });
  });

  it('merges made-up words, short and past the local merge limit, as the library does, for every model', () => {
    for (const name of ['qwen3', 'llama3_1', 'gptoss']) {
      const model = name === 'qwen3' ? files : readModel(name);
      const lib = name === 'qwen3' ? library : TokenizerLoader.fromPreTrained(model);
      const encoder = createPreTokenEncoder(lib, model.tokenizerJSON)!;
      const word = fc.stringMatching(/^[a-zA-Z0-9é_-]{1,70}$/);
      fc.assert(
        fc.property(fc.array(word, { minLength: 1, maxLength: 8 }), (words) => {
          const text = words.join(' ');
          expect(encoder.encode(text)).toEqual(lib.encode(text, { add_special_tokens: false }));
        }),
        { numRuns: 150 },
      );
    }
  });

  it('appends to the ids it is given', () => {
    const encoder = createPreTokenEncoder(library, files.tokenizerJSON)!;
    const out = [7];
    encoder.encodeInto('hello world', out);
    expect(out).toEqual([7, ...libraryIds('hello world')]);
  });

  it('declines tokenizers of another shape, which must go through the library', () => {
    const nfkc = { ...files.tokenizerJSON, normalizer: { type: 'NFKC' } };
    expect(createPreTokenEncoder(TokenizerLoader.fromPreTrained({ ...files, tokenizerJSON: nfkc }), nfkc)).toBeNull();
    const noSplit = {
      ...files.tokenizerJSON,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true },
    };
    expect(createPreTokenEncoder(TokenizerLoader.fromPreTrained({ ...files, tokenizerJSON: noSplit }), noSplit)).toBeNull();
  });
});
