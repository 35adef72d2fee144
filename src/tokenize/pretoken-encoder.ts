// Byte-level BPE through a per-pre-token cache: text is split with the tokenizer's own split regex,
// exactly as @lenml/tokenizers splits it, and each pre-token (a word with its leading space, a number,
// a whitespace run) is looked up in a bounded cache of pre-token -> ids. Only pre-tokens not seen
// recently pay for the byte mapping and the BPE merges, which are most of a cold encode; the merges
// of short words run here over a plain rank table (the library keys its ranks by JSON.stringify of
// each pair, which dominates its cost), long ones in the library.

import { detachedString } from './detached-string.ts';

/** What is used of a @lenml/tokenizers PreTrainedTokenizer; checked at run time, since it is not typed. */
interface LibraryTokenizer {
  normalizer: unknown;
  pre_tokenizer: unknown;
  model: unknown;
  remove_space?: unknown;
  do_lowercase_and_remove_accent?: unknown;
}

export interface PreTokenEncoderOptions {
  /** Pre-tokens kept in the cache; 0 disables it (every pre-token goes through BPE). */
  maxEntries?: number;
  /** Longer pre-tokens are encoded but not cached: long runs rarely repeat exactly. */
  maxCachedChars?: number;
}

/** Encodes text that holds no added token; counts what the cache served, for tests and benchmarks. */
export interface PreTokenEncoder {
  encode(text: string): number[];
  /** Appends the ids of `text` to `out`. */
  encodeInto(text: string, out: number[]): void;
  readonly stats: { hits: number; misses: number; size: number };
}

type Ids = number | number[];

/**
 * A bounded map with two generations: lookups hit the young one, or the old one (and are promoted);
 * when the young one fills, it becomes the old one and the previous old one is dropped. Most of an
 * LRU's hit rate at the cost of a Map lookup, which matters at one lookup per word.
 */
class GenerationCache {
  readonly #half: number;
  #young = new Map<string, Ids>();
  #old = new Map<string, Ids>();

  constructor(maxEntries: number) {
    this.#half = Math.max(1, Math.floor(maxEntries / 2));
  }

  get size(): number {
    return this.#young.size + this.#old.size;
  }

  get(key: string): Ids | undefined {
    const young = this.#young.get(key);
    if (young !== undefined) return young;
    const old = this.#old.get(key);
    if (old !== undefined) this.set(key, old);
    return old;
  }

  set(key: string, ids: Ids): void {
    if (this.#young.size >= this.#half) {
      this.#old = this.#young;
      this.#young = new Map();
    }
    this.#young.set(key, ids);
  }
}

interface SplitStage {
  pattern: RegExp;
}
interface ByteLevelStage {
  pre_tokenize_text(text: string): string[];
}
interface BpeModel {
  (tokens: string[]): string[];
  fuse_unk: boolean;
  convert_tokens_to_ids(tokens: string[]): number[];
  tokens_to_ids?: unknown;
  vocab?: unknown;
  bpe_ranks?: unknown;
  unk_token?: unknown;
  unk_token_id?: unknown;
  ignore_merges?: unknown;
  byte_fallback?: unknown;
  end_of_word_suffix?: unknown;
  continuing_subword_suffix?: unknown;
}

/** Words of more symbols than this go to the library's heap-based merge: the loop below is quadratic. */
const MAX_LOCAL_MERGE_SYMBOLS = 48;
/** Rank of a pair known not to merge. */
const NO_MERGE = -1;

/**
 * Merge ranks of id pairs, filled on first sight of each pair from the library's own rank table, so
 * the merges are the library's by construction. Open addressing over typed arrays: the pairs met in
 * real text are a small part of the 150-450 thousand merges a tokenizer has, and reading them all up
 * front takes longer than loading the tokenizer.
 */
class PairRanks {
  #mask = 1023;
  #used = 0;
  #left = new Int32Array(1024).fill(-1);
  #right = new Int32Array(1024);
  #rank = new Int32Array(1024);
  #merged = new Int32Array(1024);

  #slot(left: number, right: number): number {
    // murmur3's finalizer over both ids: every bit of each reaches the low bits the mask keeps.
    let h = Math.imul(left, 0x9e3779b1) ^ right;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    h ^= h >>> 16;
    let i = h & this.#mask;
    while (this.#left[i] !== -1 && (this.#left[i] !== left || this.#right[i] !== right)) i = (i + 1) & this.#mask;
    return i;
  }

  /** The slot of a known pair, or -1 when the pair was never looked up. */
  find(left: number, right: number): number {
    const i = this.#slot(left, right);
    return this.#left[i] === -1 ? -1 : i;
  }

  rankAt(slot: number): number {
    return this.#rank[slot]!;
  }

  mergedAt(slot: number): number {
    return this.#merged[slot]!;
  }

  /** Records a pair's rank (NO_MERGE when it has none) and merged id; returns its slot. */
  add(left: number, right: number, rank: number, merged: number): number {
    if ((this.#used + 1) * 2 > this.#mask + 1) this.#grow();
    const i = this.#slot(left, right);
    this.#left[i] = left;
    this.#right[i] = right;
    this.#rank[i] = rank;
    this.#merged[i] = merged;
    this.#used++;
    return i;
  }

  #grow(): void {
    const [left, right, rank, merged] = [this.#left, this.#right, this.#rank, this.#merged];
    const size = (this.#mask + 1) * 2;
    this.#mask = size - 1;
    this.#left = new Int32Array(size).fill(-1);
    this.#right = new Int32Array(size);
    this.#rank = new Int32Array(size);
    this.#merged = new Int32Array(size);
    for (let i = 0; i < left.length; i++) {
      if (left[i] === -1) continue;
      const j = this.#slot(left[i]!, right[i]!);
      this.#left[j] = left[i]!;
      this.#right[j] = right[i]!;
      this.#rank[j] = rank[i]!;
      this.#merged[j] = merged[i]!;
    }
  }
}

/** The vocabulary ids of a byte-level word's BPE symbols, or null when the library must merge it. */
type LocalBpe = (word: string) => number[] | null;

/**
 * BPE merges as the library's BPE.bpe computes them, over ids instead of strings: repeatedly merge
 * the adjacent pair of lowest rank, the leftmost on a tie (the library's queue orders by rank, then by
 * position), until no adjacent pair has a rank. Null when the model has options this does not
 * reproduce (byte fallback, word suffixes) or lacks the tables it reads.
 */
function localBpe(model: BpeModel): LocalBpe | null {
  const { tokens_to_ids: vocab, vocab: tokens, bpe_ranks: libraryRanks } = model;
  if (!(vocab instanceof Map) || !Array.isArray(tokens) || !(libraryRanks instanceof Map)) return null;
  if (model.byte_fallback || model.end_of_word_suffix || model.continuing_subword_suffix) return null;
  const ids = vocab as Map<string, number>;
  const strings = tokens as string[];
  const ranks = libraryRanks as Map<string, number>;
  const pairs = new PairRanks();
  const ignoreMerges = model.ignore_merges === true;

  /** The slot of a pair, looked up in the library's table on first sight; -1 when its merge is not in the vocabulary. */
  const pairSlot = (left: number, right: number): number => {
    const slot = pairs.find(left, right);
    if (slot >= 0) return slot;
    const a = strings[left]!;
    const b = strings[right]!;
    // The library's own key for a merge.
    const rank = ranks.get(JSON.stringify([a, b]));
    if (rank === undefined) return pairs.add(left, right, NO_MERGE, -1);
    const merged = ids.get(a + b);
    return merged === undefined ? -1 : pairs.add(left, right, rank, merged);
  };

  return (word) => {
    if (ignoreMerges) {
      const whole = ids.get(word);
      if (whole !== undefined) return [whole];
    }
    const symbols: number[] = [];
    for (const char of word) {
      const id = ids.get(char);
      // A character outside the vocabulary becomes the unknown token in the library: leave it to it.
      if (id === undefined || symbols.length === MAX_LOCAL_MERGE_SYMBOLS) return null;
      symbols.push(id);
    }
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      let bestMerged = -1;
      for (let i = 0; i + 1 < symbols.length; i++) {
        // Read at once: a later first sight may grow the table and move every slot.
        const slot = pairSlot(symbols[i]!, symbols[i + 1]!);
        if (slot < 0) return null;
        const rank = pairs.rankAt(slot);
        if (rank !== NO_MERGE && rank < bestRank) {
          bestRank = rank;
          bestMerged = pairs.mergedAt(slot);
          best = i;
        }
      }
      if (best < 0) return symbols;
      symbols.splice(best, 2, bestMerged);
    }
  };
}

/** The library's stages are callable objects (functions with fields), so both kinds count. */
const isObject = (v: unknown): v is Record<string, unknown> => (typeof v === 'object' && v !== null) || typeof v === 'function';

/**
 * The library's own stages for a tokenizer of the GPT byte-level shape (NFC or no normalizer;
 * Split(regex, Isolated) then ByteLevel without its own regex; BPE without unknown-token fusing), or
 * null for any other shape, which must go through the library's full encode.
 */
function libraryStages(tokenizer: LibraryTokenizer, tokenizerJson: Record<string, unknown>) {
  const model = tokenizerJson.model as { type?: unknown; fuse_unk?: unknown } | undefined;
  const normalizer = tokenizerJson.normalizer as { type?: unknown } | null | undefined;
  const pre = tokenizerJson.pre_tokenizer as { type?: unknown; pretokenizers?: unknown } | null | undefined;
  if (model?.type !== 'BPE' || model.fuse_unk === true) return null;
  if (normalizer != null && normalizer.type !== 'NFC') return null;
  if (pre?.type !== 'Sequence' || !Array.isArray(pre.pretokenizers) || pre.pretokenizers.length !== 2) return null;
  const [split, byteLevel] = pre.pretokenizers as [Record<string, unknown>, Record<string, unknown>];
  if (split.type !== 'Split' || split.behavior !== 'Isolated' || split.invert !== false) return null;
  if (byteLevel.type !== 'ByteLevel' || byteLevel.use_regex !== false || byteLevel.add_prefix_space !== false) return null;
  if (tokenizer.remove_space === true || tokenizer.do_lowercase_and_remove_accent) return null;

  const stages = isObject(tokenizer.pre_tokenizer) ? tokenizer.pre_tokenizer.tokenizers : undefined;
  if (!Array.isArray(stages) || stages.length !== 2) return null;
  const [splitStage, byteStage] = stages as [unknown, unknown];
  if (!isObject(splitStage) || !(splitStage.pattern instanceof RegExp) || !splitStage.pattern.global) return null;
  if (!isObject(byteStage) || typeof byteStage.pre_tokenize_text !== 'function') return null;
  const bpe = tokenizer.model as BpeModel;
  if (typeof bpe !== 'function' || bpe.fuse_unk || typeof bpe.convert_tokens_to_ids !== 'function') return null;
  return { nfc: normalizer != null, split: splitStage as unknown as SplitStage, byteLevel: byteStage as unknown as ByteLevelStage, bpe };
}

/**
 * A cached encoder over `tokenizer`'s own stages, or null when the tokenizer is not of the byte-level
 * BPE shape this reproduces (the caller then uses the library's encode). The result equals the
 * library's encode(text, { add_special_tokens: false }) for text without added tokens: the library
 * normalizes the text, splits it with the same regex (`regexSplit`: matches and the gaps between them),
 * maps each piece through ByteLevel and BPE one piece at a time, and maps tokens to ids.
 */
export function createPreTokenEncoder(
  tokenizer: LibraryTokenizer,
  tokenizerJson: Record<string, unknown>,
  options: PreTokenEncoderOptions = {},
): PreTokenEncoder | null {
  const stages = libraryStages(tokenizer, tokenizerJson);
  if (!stages) return null;
  const { nfc, byteLevel, bpe } = stages;
  // A private copy: exec moves lastIndex, and the library's instance must not see it move.
  const pattern = new RegExp(stages.split.pattern.source, stages.split.pattern.flags);
  // The v flag (unicodeSets) steps by code point too; ES2023's RegExp type does not know it yet.
  const unicode = pattern.unicode || pattern.flags.includes('v');
  const maxEntries = options.maxEntries ?? 32_768;
  const maxCachedChars = options.maxCachedChars ?? 128;
  const cache = maxEntries > 0 ? new GenerationCache(maxEntries) : null;
  const stats = {
    hits: 0,
    misses: 0,
    get size() {
      return cache?.size ?? 0;
    },
  };

  const merge = localBpe(bpe);
  const encodePiece = (piece: string): Ids => {
    const words = byteLevel.pre_tokenize_text(piece);
    let ids: number[] | null = null;
    if (merge && words.length === 1) ids = merge(words[0]!);
    ids ??= bpe.convert_tokens_to_ids(bpe(words));
    return ids.length === 1 ? ids[0]! : ids;
  };

  const push = (piece: string, out: number[]): void => {
    let ids = cache?.get(piece);
    if (ids === undefined) {
      stats.misses++;
      ids = encodePiece(piece);
      // A piece is a slice of the text being encoded: kept as it is, it would keep that text alive.
      if (cache && piece.length <= maxCachedChars) cache.set(detachedString(piece), ids);
    } else stats.hits++;
    if (typeof ids === 'number') out.push(ids);
    else for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
  };

  const encodeInto = (raw: string, out: number[]): void => {
    const text = nfc ? raw.normalize('NFC') : raw;
    // regexSplit in @lenml/tokenizers: every match, and any text between matches, is a piece.
    let prev = 0;
    pattern.lastIndex = 0;
    for (let m = pattern.exec(text); m !== null; m = pattern.exec(text)) {
      const at = m.index;
      const matched = m[0];
      if (prev < at) push(text.slice(prev, at), out);
      if (matched.length > 0) push(matched, out);
      else {
        // As String.prototype.matchAll steps past an empty match: one code point on.
        const code = text.charCodeAt(at);
        const pair = unicode && code >= 0xd800 && code <= 0xdbff && at + 1 < text.length && (text.charCodeAt(at + 1) & 0xfc00) === 0xdc00;
        pattern.lastIndex = at + (pair ? 2 : 1);
      }
      prev = at + matched.length;
    }
    if (prev < text.length) push(text.slice(prev), out);
  };

  return {
    encode: (text) => {
      const out: number[] = [];
      encodeInto(text, out);
      return out;
    },
    encodeInto,
    stats,
  };
}
