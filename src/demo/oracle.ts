// The upper bound of a routing run: the token hit rate one prefix cache of unlimited size would reach
// on the same request sequence. A block is a hit when it and every block before it were in an
// earlier prompt; hits stop before the last prompt token, as vLLM's (and the simulator's) do.

import type { ChatMessage } from '../common/chat.ts';
import type { WorkloadRequest } from './workloads/types.ts';

/** Default KV block size of the pods (vLLM's default). */
const ORACLE_BLOCK_SIZE = 16;

/**
 * The most prompt tokens a prefix-cache hit can cover: whole blocks, never the last token (vLLM
 * recomputes it to get logits), the rule of the simulator's KvCacheManager.getComputedBlocks.
 */
export function maxCacheableTokens(promptTokens: number, blockSize: number): number {
  if (promptTokens <= 0) return 0;
  return Math.floor((promptTokens - 1) / blockSize) * blockSize;
}

// Two independent 32-bit lanes (murmur3-style mixing) chained through the blocks, packed into a
// 53-bit number key: one accidental collision among a million blocks has odds near 1 in 20,000.
function mixLane(h: number, v: number, c: number): number {
  h = Math.imul(h ^ v, c);
  h ^= h >>> 15;
  return Math.imul(h, 0x27d4eb2d);
}

export class PrefixOracle {
  readonly blockSize: number;
  private readonly seen = new Set<number>();

  constructor(blockSize = ORACLE_BLOCK_SIZE) {
    if (!Number.isInteger(blockSize) || blockSize < 1) throw new Error(`blockSize: expected a positive integer, got ${blockSize}`);
    this.blockSize = blockSize;
  }

  /** Distinct full blocks seen so far: the size the unlimited cache grew to. */
  get distinctBlocks(): number {
    return this.seen.size;
  }

  /** Records one prompt (in arrival order) and returns the tokens the unlimited cache would have hit. */
  observe(tokens: readonly number[]): number {
    const keys = this.blockKeys(tokens);
    const hit = this.matchKeys(keys, tokens.length);
    for (const key of keys) this.seen.add(key);
    return hit;
  }

  /** The tokens a prompt would hit now, without recording it. */
  match(tokens: readonly number[]): number {
    return this.matchKeys(this.blockKeys(tokens), tokens.length);
  }

  private matchKeys(keys: readonly number[], promptTokens: number): number {
    const limit = Math.min(keys.length, maxCacheableTokens(promptTokens, this.blockSize) / this.blockSize);
    let blocks = 0;
    while (blocks < limit && this.seen.has(keys[blocks]!)) blocks++;
    return blocks * this.blockSize;
  }

  /** One key per full block, each depending on every token up to the end of its block. */
  private blockKeys(tokens: readonly number[]): number[] {
    const B = this.blockSize;
    const keys = new Array<number>(Math.floor(tokens.length / B));
    let a = 0x811c9dc5;
    let b = 0x1b873593;
    for (let blk = 0; blk < keys.length; blk++) {
      for (let i = blk * B; i < (blk + 1) * B; i++) {
        const t = tokens[i]!;
        a = mixLane(a, t, 0xcc9e2d51);
        b = mixLane(b, t ^ 0x5bd1e995, 0x85ebca6b);
      }
      keys[blk] = (a >>> 0) * 2097152 + (b >>> 11);
    }
    return keys;
  }
}

export interface OracleResult {
  /** Per request, in order: prompt tokens the unlimited cache would have hit. */
  hitTokens: number[];
  promptTokens: number;
  totalHitTokens: number;
  /** totalHitTokens / promptTokens: the bound every strategy is compared to. */
  tokenHitRate: number;
  distinctBlocks: number;
}

/** Runs the unlimited cache over a request sequence given as token arrays. */
export function computeOracle(prompts: Iterable<readonly number[]>, blockSize = ORACLE_BLOCK_SIZE): OracleResult {
  const oracle = new PrefixOracle(blockSize);
  const hitTokens: number[] = [];
  let promptTokens = 0;
  let totalHitTokens = 0;
  for (const tokens of prompts) {
    const hit = oracle.observe(tokens);
    hitTokens.push(hit);
    promptTokens += tokens.length;
    totalHitTokens += hit;
  }
  return {
    hitTokens,
    promptTokens,
    totalHitTokens,
    tokenHitRate: promptTokens === 0 ? 0 : totalHitTokens / promptTokens,
    distinctBlocks: oracle.distinctBlocks,
  };
}

/** The tokenizer surface `promptTokenArrays` needs (src/tokenize's Tokenization has it). */
export interface PromptTokenizer {
  tokenize(model: string, input: { prompt?: string; messages?: ChatMessage[] }): Promise<{ tokens: number[] }>;
}

/**
 * Each request's prompt as the token ids the pods will see: token-id prompts as they are, text and
 * chat prompts through the tokenizer the pods use (needed only by workloads from JSONL files).
 */
export async function promptTokenArrays(
  requests: readonly WorkloadRequest[],
  tokenizer?: PromptTokenizer,
): Promise<Array<readonly number[]>> {
  const out: Array<readonly number[]> = [];
  for (const [i, r] of requests.entries()) {
    const tokens = r.tokens;
    if (tokens) {
      out.push(tokens);
      continue;
    }
    if (!tokenizer) throw new Error(`request ${i}: a text or chat prompt needs a tokenizer to compute the bound`);
    const input = r.messages ? { messages: r.messages } : { prompt: r.prompt ?? '' };
    out.push((await tokenizer.tokenize(r.model, input)).tokens);
  }
  return out;
}

/**
 * The token-id prompts of a workload one at a time, for computeOracle: trace prompts are expanded
 * as they are read, so a whole trace is never held as token arrays at once.
 */
export function* tokenPrompts(requests: readonly WorkloadRequest[]): Generator<readonly number[]> {
  for (const [i, r] of requests.entries()) {
    const tokens = r.tokens;
    if (!tokens) throw new Error(`request ${i}: not a token-id prompt; tokenize text and chat prompts with promptTokenArrays`);
    yield tokens;
  }
}
