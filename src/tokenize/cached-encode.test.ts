// Property tests: the cached tokenization path (segment cache with content-defined cuts, over the
// per-pre-token cache) gives exactly the ids of the uncached library encode, for random texts and for
// texts that share prefixes, shared stretches after different heads, and break at odd places.

import { beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import fs from 'node:fs';
import path from 'node:path';
import { TokenizerLoader } from '@lenml/tokenizers';
import { loadModelTokenizer, type ModelTokenizer } from './model-tokenizer.ts';
import { parseTokenizerSource } from './source.ts';

/** Pieces that stress the split regex, the byte-level mapping, NFC and the cut rules. */
const FRAGMENTS = [
  'the',
  ' the',
  'Cache',
  ' prefix',
  'é',
  'e\u0301',
  'Ünïcödé',
  ' 你好世界',
  'Ελληνικά',
  ' 𝐀𝐁',
  '🙂',
  '👍🏽',
  ' ',
  '  ',
  '   ',
  '\t',
  '\n',
  '\n\n',
  '\r\n',
  ' \n',
  '\n ',
  "'s",
  "'LL",
  "n't",
  '12',
  '345',
  '6789',
  '.',
  '!?',
  '...',
  '();',
  '{"a":1}',
  '/path/to',
  '--',
  '\u00a0',
  '\u3000',
  '\ud800',
  '\udc00',
  '\u0301',
  'Ａ',
  'ﬁ',
];

/** Random text: fragments and arbitrary graphemes, sometimes with the model's added tokens in between. */
function textArbitrary(addedTokens: string[]): fc.Arbitrary<string> {
  const piece = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...FRAGMENTS) },
    { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 6 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 4 }) },
    { weight: 1, arbitrary: fc.constantFrom(...addedTokens) },
  );
  return fc.array(piece, { maxLength: 60 }).map((parts) => parts.join(''));
}

interface Models {
  cached: ModelTokenizer;
  /** The library's own encode with add_special_tokens=True: no cache of ours anywhere. */
  reference: (text: string) => number[];
  addedTokens: string[];
}

async function load(name: string, chunkChars: number): Promise<Models> {
  const source = parseTokenizerSource(`npm:${name}`);
  if (source.kind !== 'npm') throw new Error('expected an npm source');
  const read = (file: string) => JSON.parse(fs.readFileSync(path.join(source.dir, file), 'utf8')) as Record<string, unknown>;
  const tokenizerJSON = read('tokenizer.json');
  const library = TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig: read('tokenizer_config.json') });
  const addedTokens = (tokenizerJSON.added_tokens as Array<{ content: string }>).slice(0, 8).map((t) => t.content);
  const cached = await loadModelTokenizer(name, source, { chunkChars });
  return { cached, reference: (text) => library.encode(text, { add_special_tokens: true }), addedTokens };
}

describe.each(['qwen3', 'llama3_1', 'gptoss'])('cached tokenization with the %s tokenizer', (name) => {
  // Tiny pieces, so that short texts are cut many times and the caches hold many pieces of every kind.
  let tiny: Models;
  let normal: Models;
  beforeAll(async () => {
    tiny = await load(name, 4);
    normal = await load(name, 512);
  });

  it('serves words from the pre-token cache (the fast path is in use)', () => {
    expect(tiny.cached.preTokenCache).toBe(true);
  });

  it('gives the library ids for random texts, from warm caches', () => {
    fc.assert(
      fc.property(textArbitrary(tiny.addedTokens), (text) => {
        const want = tiny.reference(text);
        expect(tiny.cached.tokenizePrompt(text)).toEqual(want);
        // Again, now that every piece of it is cached.
        expect(tiny.cached.tokenizePrompt(text)).toEqual(want);
      }),
      { numRuns: 150 },
    );
  });

  it('gives the library ids for texts sharing a prefix, cut at any place, with any continuation', () => {
    fc.assert(
      fc.property(
        textArbitrary(tiny.addedTokens),
        fc.array(fc.tuple(fc.nat(), textArbitrary(tiny.addedTokens)), { minLength: 1, maxLength: 4 }),
        (shared, variants) => {
          for (const [at, tail] of variants) {
            const text = shared.slice(0, at % (shared.length + 1)) + tail;
            expect(tiny.cached.tokenizePrompt(text)).toEqual(tiny.reference(text));
          }
        },
      ),
      { numRuns: 100 },
    );
  });

  it('gives the library ids for a long shared stretch after heads of different lengths', () => {
    fc.assert(
      fc.property(
        fc.array(textArbitrary(normal.addedTokens), { minLength: 20, maxLength: 40 }),
        fc.array(fc.string({ maxLength: 30 }), { minLength: 2, maxLength: 3 }),
        (parts, heads) => {
          const body = parts.join(' ');
          for (const head of heads) {
            const text = `${head}: ${body}`;
            expect(normal.cached.tokenizePrompt(text)).toEqual(normal.reference(text));
          }
        },
      ),
      { numRuns: 25 },
    );
  });
});
