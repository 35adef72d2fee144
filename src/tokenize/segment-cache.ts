// Exact tokenization with reuse: text is cut only where a cut provably cannot change the tokens
// (at added tokens, which HF tokenizers split out before anything else, and, for GPT-style byte-level
// BPE, between a newline and a letter or between a letter and a space), and each piece's ids are cached
// by the piece's text. Where to cut among the safe places is decided by the text itself (a rolling hash
// of the characters before it, as content-defined chunking does), so two prompts that share a stretch
// of text cut it into the same pieces even when what comes before differs in length: a prompt that
// shares a prefix (a system prompt) or a document with an earlier one re-tokenizes only what differs.

import { LRUCache } from 'lru-cache';
import { mulberry32 } from '../common/random.ts';
import { detachedString } from './detached-string.ts';
import type { SegmentEncoder } from './encoder.ts';

export interface SegmentCacheOptions {
  /** Bound on cached text and ids, in bytes (2 per UTF-16 unit of text, 4 per id); 0 disables the cache. */
  maxBytes?: number;
  /**
   * Pieces of ordinary text are at least this many characters; cuts are chosen about this far apart
   * past that (so pieces average about twice it), and forced at the first safe place past 8 times it.
   */
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

const LETTER = /^\p{L}$/u;
const isAsciiLetter = (c: number) => (c | 32) >= 97 && (c | 32) <= 122;

/** Whether the code point starting at `i` is a letter (\p{L}). */
function letterAt(text: string, i: number): boolean {
  const c = text.charCodeAt(i);
  if (c < 0x80) return isAsciiLetter(c);
  return LETTER.test(String.fromCodePoint(text.codePointAt(i)!));
}

/** Whether the code point ending just before `i` is a letter. */
function letterBefore(text: string, i: number): boolean {
  const c = text.charCodeAt(i - 1);
  if (c < 0x80) return isAsciiLetter(c);
  const start = (c & 0xfc00) === 0xdc00 && i >= 2 && (text.charCodeAt(i - 2) & 0xfc00) === 0xd800 ? i - 2 : i - 1;
  return LETTER.test(String.fromCodePoint(text.codePointAt(start)!));
}

/**
 * Whether cutting `text` before position `i` leaves its tokens unchanged, for a GPT-style split regex
 * (encoder.ts, SAFE_CUT_SPLIT_PATTERNS): between "\n" and a letter, or between a letter and a
 * space. No branch of those regexes matches across either pair (letters are only ever followed, within
 * a match, by letters, marks or a contraction; a newline only by more whitespace), none looks behind,
 * and the only look-ahead, (?!\S), sees the same at a space or the end of text; so the matches on each
 * side of the cut are the matches of the whole. NFC composes nothing across either pair.
 */
export function isSafeCut(text: string, i: number): boolean {
  if (i <= 0 || i >= text.length) return false;
  const before = text.charCodeAt(i - 1);
  const at = text.charCodeAt(i);
  if (before === 10) return letterAt(text, i);
  return at === 32 && letterBefore(text, i);
}

/** Gear hash table (FastCDC): a random 32-bit value per low byte of a UTF-16 unit; fixed, so cuts are stable across processes. */
const GEAR = (() => {
  const random = mulberry32(0x6b76726f);
  return Int32Array.from({ length: 256 }, () => Math.floor(random() * 2 ** 32) | 0);
})();

/**
 * Cut positions in `text`, each a safe cut (isSafeCut) at least `chunkChars` after the previous one.
 * A cut goes at the first safe place at or after a position where the gear hash of the 32 characters
 * before it has its low log2(chunkChars) bits zero, or at the first safe place past 8 * chunkChars.
 * The hash reads only nearby text, so equal stretches of text get equal cuts once a cut coincides.
 */
export function safeCuts(text: string, chunkChars: number): number[] {
  const cuts: number[] = [];
  const min = Math.max(1, Math.floor(chunkChars));
  if (min >= text.length) return cuts;
  const mask = (1 << Math.min(30, Math.max(0, Math.round(Math.log2(min))))) - 1;
  const max = min * 8;
  let start = 0;
  for (;;) {
    const from = start + min;
    if (from >= text.length) break;
    // The hash at `from` covers the 32 units before it (older bits have shifted out of 32 bits).
    let hash = 0;
    for (let i = Math.max(start, from - 32); i < from; i++) hash = ((hash << 1) + GEAR[text.charCodeAt(i) & 255]!) | 0;
    let cut = -1;
    let candidate = false;
    for (let i = from; i < text.length; i++) {
      if (!candidate && ((hash & mask) === 0 || i - start >= max)) candidate = true;
      if (candidate && isSafeCut(text, i)) {
        cut = i;
        break;
      }
      hash = ((hash << 1) + GEAR[text.charCodeAt(i) & 255]!) | 0;
    }
    if (cut < 0) break;
    cuts.push(cut);
    start = cut;
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
        ? new LRUCache<string, Uint32Array>({
            maxSize: maxBytes,
            sizeCalculation: (ids, text) => Math.max(1, text.length * 2 + ids.length * 4),
          })
        : null;
    this.addedPattern = addedTokenPattern(encoder.addedTokens.keys());
    this.chunkChars = options.chunkChars ?? 512;
    this.onLookup = options.onLookup ?? (() => {});
  }

  /** Token ids of `text` with added tokens recognized and no special tokens added (add_special_tokens=False). */
  encode(text: string): number[] {
    const out: number[] = [];
    this.encodeInto(text, out);
    return out;
  }

  /** Appends the ids encode(text) would return to `out` (long prompts are not copied once more). */
  encodeInto(text: string, out: number[]): void {
    const pattern = this.addedPattern;
    if (!pattern) {
      this.encodeOrdinaryInto(text, out);
      return;
    }
    pattern.lastIndex = 0;
    let from = 0;
    for (let m = pattern.exec(text); m; m = pattern.exec(text)) {
      if (m.index > from) this.encodeOrdinaryInto(text.slice(from, m.index), out);
      out.push(this.encoder.addedTokens.get(m[0])!);
      from = m.index + m[0].length;
    }
    if (from < text.length) this.encodeOrdinaryInto(text.slice(from), out);
  }

  get size(): number {
    return this.cache?.size ?? 0;
  }

  /** Bytes held, as counted against maxBytes. */
  get bytes(): number {
    return this.cache?.calculatedSize ?? 0;
  }

  private encodeOrdinaryInto(text: string, out: number[]): void {
    if (!this.encoder.wordCutsAreSafe) {
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
      // `text` is a slice of the whole prompt: kept as it is, it would keep the prompt alive.
      this.cache?.set(detachedString(text), ids);
    }
    this.onLookup(hit, ids.length);
    for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
  }
}
