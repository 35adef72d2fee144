// What the simulator needs from a tokenizer: vLLM-exact prompt and chat tokenization through
// src/tokenize's Tokenization (the indexer's code, in worker threads so a long cold prompt never
// stalls the replicas sharing this event loop), plus a vocabulary of plain word tokens to "generate"
// from and a byte-level BPE decoder to turn them back into text.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../common/log.ts';
import { TokenizerPool } from '../tokenize/pool.ts';
import { parseTokenizerSource } from '../tokenize/source.ts';
import { TokenizerSet, type Tokenization, type TokenizeInput } from '../tokenize/tokenizers.ts';

export interface SimTokenizer {
  readonly source: string;
  /** Token ids of a completions prompt or chat messages, as vLLM's endpoints compute them. */
  tokenize(input: TokenizeInput): Promise<number[]>;
  /** Token ids generation draws from: ordinary words, so generated text reads as text. */
  readonly sampleableIds: Uint32Array;
  decode(ids: readonly number[]): string;
  close(): Promise<void>;
}

export interface SimTokenizerOptions {
  /**
   * Worker threads that tokenize; 0 tokenizes on the event loop (tests). One model is pinned to one
   * worker, so more than one only helps when this process serves several models.
   */
  workers?: number;
  log?: Logger;
}

/** GPT-2's bytes_to_unicode table, inverted: the character a byte-level BPE token uses -> the byte. */
function byteDecoder(): Map<string, number> {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const out = new Map<string, number>();
  bs.forEach((b, i) => out.set(String.fromCodePoint(cs[i]!), b));
  return out;
}

const WORD_TOKEN = /^\u0120?[a-z]{2,10}$/;

class ByteLevelVocabulary {
  private readonly pieces: string[];
  private readonly bytes = byteDecoder();
  readonly sampleableIds: Uint32Array;

  constructor(vocab: Record<string, number>) {
    this.pieces = [];
    const words: number[] = [];
    for (const [piece, id] of Object.entries(vocab)) {
      this.pieces[id] = piece;
      if (WORD_TOKEN.test(piece)) words.push(id);
    }
    if (words.length === 0) throw new Error('tokenizer vocabulary has no plain word tokens to generate from');
    words.sort((a, b) => a - b);
    this.sampleableIds = Uint32Array.from(words);
  }

  decode(ids: readonly number[]): string {
    const out: number[] = [];
    for (const id of ids) {
      const piece = this.pieces[id];
      if (piece === undefined) continue;
      for (const ch of piece) {
        const b = this.bytes.get(ch);
        if (b !== undefined) out.push(b);
      }
    }
    return Buffer.from(out).toString('utf8');
  }
}

class IndexerBackedTokenizer implements SimTokenizer {
  readonly source: string;
  readonly sampleableIds: Uint32Array;
  private readonly model: string;
  private readonly tokenization: Tokenization;
  private readonly vocab: ByteLevelVocabulary;

  constructor(model: string, source: string, tokenization: Tokenization, vocab: ByteLevelVocabulary) {
    this.model = model;
    this.tokenization = tokenization;
    this.vocab = vocab;
    this.source = source;
    this.sampleableIds = vocab.sampleableIds;
  }

  async tokenize(input: TokenizeInput): Promise<number[]> {
    return (await this.tokenization.tokenize(this.model, input)).tokens;
  }

  decode(ids: readonly number[]): string {
    return this.vocab.decode(ids);
  }

  close(): Promise<void> {
    return this.tokenization.close();
  }
}

/** Loads a tokenizer from a source spec (npm:qwen3, dir:/path, ...) that has a byte-level BPE tokenizer.json. */
export async function loadSimTokenizer(model: string, spec: string, options: SimTokenizerOptions = {}): Promise<SimTokenizer> {
  const workers = options.workers ?? 1;
  if (!Number.isInteger(workers) || workers < 0) throw new Error(`tokenizer workers must be an integer >= 0, got ${workers}`);
  const source = parseTokenizerSource(spec);
  if (source.kind === 'tiktoken') {
    throw new Error(`tokenizer "${spec}": the simulator needs a tokenizer.json source (npm:<name> or dir:<path>) to generate text`);
  }
  const json = JSON.parse(await readFile(path.join(source.dir, 'tokenizer.json'), 'utf8')) as {
    model?: { type?: string; vocab?: Record<string, number> };
  };
  if (json.model?.type !== 'BPE' || !json.model.vocab) {
    throw new Error(
      `tokenizer "${spec}": expected a byte-level BPE tokenizer.json with model.vocab, got model.type ${String(json.model?.type)}`,
    );
  }
  const vocab = new ByteLevelVocabulary(json.model.vocab);
  const sources = { [model]: spec };
  const tokenization: Tokenization =
    workers > 0 ? new TokenizerPool({ workers, sources, log: options.log }) : new TokenizerSet({ sources, log: options.log });
  await tokenization.load();
  return new IndexerBackedTokenizer(
    model,
    `${spec}${workers > 0 ? ` (${workers} worker${workers > 1 ? 's' : ''})` : ' (event loop)'}`,
    tokenization,
    vocab,
  );
}
