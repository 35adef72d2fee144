// Replays a Mooncake FAST'25 trace (`timestamp`, `input_length`, `output_length`, `hash_ids` of
// 512-token blocks). The trace has no text, so each hash id becomes a deterministic block of token
// ids seeded by the id: equal ids give equal blocks in every request, and prefix reuse is the trace's.

import { z } from 'zod';
import { mulberry32 } from '../../common/random.ts';
import { parseLine, readJsonLines, WorkloadFileError } from './lines.ts';
import { checkInt, deriveSeed, TOKEN_ID_MAX, TOKEN_ID_MIN } from './tokens.ts';
import type { WorkloadRequest } from './types.ts';

/** Tokens per hash id in the published traces. */
const MOONCAKE_BLOCK_TOKENS = 512;

const BLOCK = 31;

const MooncakeRecordSchema = z.object({
  timestamp: z.number({ message: 'expected milliseconds since the start of the trace' }).finite().nonnegative('must be >= 0'),
  input_length: z.number({ message: 'expected the prompt length in tokens' }).int('must be an integer').min(1, 'must be at least 1'),
  output_length: z.number({ message: 'expected the output length in tokens' }).int('must be an integer').nonnegative('must be >= 0'),
  hash_ids: z.array(z.number().int('must be an integer').nonnegative('must be >= 0').max(Number.MAX_SAFE_INTEGER), {
    message: 'expected an array of block hash ids',
  }),
});
export type MooncakeRecord = z.infer<typeof MooncakeRecordSchema>;

export interface MooncakeOptions {
  model: string;
  /** Mixed into every block's seed: another seed gives other tokens with the same reuse. Default 0. */
  seed?: number;
  /** Only the first `limit` requests. */
  limit?: number;
  /** Caps max_tokens (output_length otherwise; at least 1, since the API rejects 0). */
  maxOutputTokens?: number;
  /** Cuts longer prompts to their first `maxInputTokens` tokens (their prefix, so reuse is kept). */
  maxInputTokens?: number;
  /** Tokens per hash id; 512 in the published traces. */
  blockTokens?: number;
}

export interface MooncakeTrace {
  /** Their `tokens` are expanded from the hash ids on every read (cheap: one PRNG call per token). */
  requests: WorkloadRequest[];
  /** Requests whose prompt `maxInputTokens` cut. */
  truncated: number;
}

/** A record must name one hash id per (possibly partial) block of its prompt. */
function checkBlocks(record: Pick<MooncakeRecord, 'input_length' | 'hash_ids'>, blockTokens: number): void {
  const blocks = Math.ceil(record.input_length / blockTokens);
  if (record.hash_ids.length !== blocks) {
    throw new Error(
      `hash_ids: expected ceil(input_length / ${blockTokens}) = ${blocks} ids for input_length ${record.input_length}, got ${record.hash_ids.length}`,
    );
  }
}

/** Writes hash id `id`'s block (its first `count` tokens) into `out` at `offset`. */
function fillBlock(out: number[], offset: number, id: number, seed: number, count: number): void {
  const rand = mulberry32(deriveSeed(seed, BLOCK, id));
  for (let i = 0; i < count; i++) out[offset + i] = TOKEN_ID_MIN + Math.floor(rand() * (TOKEN_ID_MAX - TOKEN_ID_MIN));
}

/**
 * The prompt of one record: each hash id's block in order, the last one cut so the prompt has exactly
 * input_length tokens (or `maxTokens` when that is smaller).
 */
export function expandMooncakePrompt(
  record: Pick<MooncakeRecord, 'input_length' | 'hash_ids'>,
  seed = 0,
  blockTokens = MOONCAKE_BLOCK_TOKENS,
  maxTokens = Infinity,
): number[] {
  checkBlocks(record, blockTokens);
  const length = Math.min(record.input_length, maxTokens);
  const out = new Array<number>(length);
  for (let b = 0; b * blockTokens < length; b++) {
    fillBlock(out, b * blockTokens, record.hash_ids[b]!, seed, Math.min(blockTokens, length - b * blockTokens));
  }
  return out;
}

/** Reads the trace as a stream; errors name the line and the field. */
export async function loadMooncakeTrace(path: string, options: MooncakeOptions): Promise<MooncakeTrace> {
  const seed = options.seed ?? 0;
  const blockTokens = options.blockTokens ?? MOONCAKE_BLOCK_TOKENS;
  checkInt('blockTokens', blockTokens, 1);
  if (options.limit !== undefined) checkInt('limit', options.limit, 1);
  if (options.maxOutputTokens !== undefined) checkInt('maxOutputTokens', options.maxOutputTokens, 1);
  if (options.maxInputTokens !== undefined) checkInt('maxInputTokens', options.maxInputTokens, 1);
  const requests: WorkloadRequest[] = [];
  let truncated = 0;
  let first: number | null = null;
  let last = 0;
  for await (const item of readJsonLines(path)) {
    if (options.limit !== undefined && requests.length >= options.limit) break;
    const record = parseLine(MooncakeRecordSchema, path, item);
    if (record.timestamp < last) {
      throw new WorkloadFileError(
        `${path}:${item.line}: timestamp: ${record.timestamp} is earlier than the previous request's ${last}; the trace must be in arrival order`,
      );
    }
    last = record.timestamp;
    first ??= record.timestamp;
    try {
      checkBlocks(record, blockTokens);
    } catch (err) {
      throw new WorkloadFileError(`${path}:${item.line}: ${(err as Error).message}`);
    }
    if (options.maxInputTokens !== undefined && record.input_length > options.maxInputTokens) truncated++;
    const { maxInputTokens } = options;
    requests.push({
      tMs: record.timestamp - first,
      model: options.model,
      // Expanded on each read: a whole trace as token arrays would take gigabytes, its hash ids take little.
      get tokens(): number[] {
        return expandMooncakePrompt(record, seed, blockTokens, maxInputTokens);
      },
      maxTokens: Math.max(1, Math.min(record.output_length, options.maxOutputTokens ?? Infinity)),
    });
  }
  if (requests.length === 0) throw new WorkloadFileError(`${path}: no requests (the file is empty)`);
  return { requests, truncated };
}
