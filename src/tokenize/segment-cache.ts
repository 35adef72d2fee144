// Exact tokenization with reuse: text is cut only where a cut provably cannot change the tokens
// (at added tokens, which HF tokenizers split out before anything else, and, for GPT-style byte-level
// BPE, between a newline and a letter), and each piece's ids are cached by the piece's text. A prompt
// that shares a prefix with an earlier one re-tokenizes only the pieces after the divergence.

import { LRUCache } from 'lru-cache';
import type { SegmentEncoder } from './encoder.ts';

export interface SegmentCacheOptions {
  /** Bound on cached text and ids, in bytes (2 per UTF-16 unit of text, 4 per id); 0 disables the cache. */
  maxBytes?: number;
  /** Pieces of ordinary text are cut only after at least this many characters. */
  chunkChars?: number;
  /** Called once per piece looked up: whether it was cached and how many ids it holds. */
  onLookup?: (hit: boolean, tokens: number) => void;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A regex matching any added token, longest first at a position, as HF's leftmost-longest trie does. */
function addedTokenPattern(addedTokens: Iterable<string>): RegExp | null {
  const contents = [...addedTokens].filter((t) => t.length > 0).sort((a, b) => b.length - a.length);
  return contents.length === 0 ? null : new RegExp(contents.map(escapeRegExp).join('|'), 'g');
}

const NEWLINE_BEFORE_LETTER = /\n(?=\p{L})/gu;

/** Cut positions in `text`: each the first newline-letter boundary at least `chunkChars` after the previous cut. */
export function safeCuts(text: string, chunkChars: number): number[] {
  const cuts: number[] = [];
  let start = 0;
  const re = new RegExp(NEWLINE_BEFORE_LETTER);
  while (start + chunkChars < text.length) {
    re.lastIndex = start + chunkChars - 1;
    const m = re.exec(text);
    if (!m) break;
    start = m.index + 1;
    cuts.push(start);
  }
  return cuts;
}

export class SegmentCache {
  private readonly encoder: SegmentEncoder;
  private readonly cache: LRUCache<string, Uint32Array> | null;
  private readonly addedPattern: RegExp | null;
  private readonly chunkChars: number;
  private readonly onLookup: (hit: boolean, tokens: number) => void;

  constructor(encoder: SegmentEncoder, options: SegmentCacheOptions = {}) {
    this.encoder = encoder;
    const maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
    this.cache =
      maxBytes > 0
        ? new LRUCache<string, Uint32Array>({ maxSize: maxBytes, sizeCalculation: (ids, text) => Math.max(1, text.length * 2 + ids.length * 4) })
        : null;
    this.addedPattern = addedTokenPattern(encoder.addedTokens.keys());
    this.chunkChars = options.chunkChars ?? 1024;
    this.onLookup = options.onLookup ?? (() => {});
  }

  /** Token ids of `text` with added tokens recognized and no special tokens added (add_special_tokens=False). */
  encode(text: string): number[] {
    const out: number[] = [];
    const pattern = this.addedPattern;
    if (!pattern) {
      this.encodeOrdinaryInto(text, out);
      return out;
    }
    pattern.lastIndex = 0;
    let from = 0;
    for (let m = pattern.exec(text); m; m = pattern.exec(text)) {
      if (m.index > from) this.encodeOrdinaryInto(text.slice(from, m.index), out);
      out.push(this.encoder.addedTokens.get(m[0])!);
      from = m.index + m[0].length;
    }
    if (from < text.length) this.encodeOrdinaryInto(text.slice(from), out);
    return out;
  }

  get size(): number {
    return this.cache?.size ?? 0;
  }

  private encodeOrdinaryInto(text: string, out: number[]): void {
    if (!this.encoder.newlineLetterCutsAreSafe) {
      this.piece(text, out);
      return;
    }
    let from = 0;
    for (const cut of safeCuts(text, this.chunkChars)) {
      this.piece(text.slice(from, cut), out);
      from = cut;
    }
    this.piece(text.slice(from), out);
  }

  private piece(text: string, out: number[]): void {
    let ids = this.cache?.get(text);
    const hit = ids !== undefined;
    if (!ids) {
      ids = Uint32Array.from(this.encoder.encodeOrdinary(text));
      this.cache?.set(text, ids);
    }
    this.onLookup(hit, ids.length);
    for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
  }
}
