// llm-d's approx-prefix-cache-producer: router-side block hashing for engines that publish no KV
// events. The request's prompt is cut into fixed-size blocks (bytes of UTF-8 text: about 4 per token,
// like llm-d's estimate backend; or uint32 token ids when the request carries tokens), hashed as a
// chain of XXH64 seeded by model and cache_salt, and looked up in an index of what each endpoint was
// sent (approx-index.ts). After the pick, the chosen endpoint's LRU gets the request's blocks.

import { z } from 'zod';
import type { ChatMessage } from '../../../common/chat.ts';
import { xxh64Into } from '../../../common/xxh64.ts';
import type { InferenceRequest } from '../../types.ts';
import { definePlugin, type CycleState, type PrefixMatch } from '../types.ts';
import { ApproxPrefixIndex } from './approx-index.ts';

/** Bytes per token llm-d's estimate backend assumes. */
const BYTES_PER_TOKEN = 4;
/** Endpoints not seen among the candidates for this long lose their index entries. */
const FORGET_ENDPOINT_AFTER_MS = 60_000;
const SWEEP_EVERY_MS = 10_000;

const ApproxParameters = z
  .strictObject({
    /** Block size in bytes of prompt text (default 256, about 64 tokens). */
    blockSizeChars: z.int().min(1).optional(),
    /** GAIE v1's name for blockSizeChars. */
    hashBlockSize: z.int().min(1).optional(),
    /** llm-d's block size in tokens: blockSizeChars = 4 * blockSize. */
    blockSize: z.int().min(1).optional(),
    /** Blocks hashed per request at most (default 256). */
    maxPrefixBlocksToMatch: z.int().min(1).optional(),
    /** llm-d's bound in tokens: maxPrefixBlocksToMatch = floor(maxPrefixTokensToMatch * 4 / blockSizeChars). */
    maxPrefixTokensToMatch: z.int().min(1).optional(),
    /** Blocks remembered per endpoint (GAIE's default 31250). */
    lruCapacityPerServer: z.int().min(1).default(31_250),
  })
  .prefault({})
  .superRefine((p, ctx) => {
    const sizes = (['blockSizeChars', 'hashBlockSize', 'blockSize'] as const).filter((k) => p[k] !== undefined);
    if (sizes.length > 1)
      ctx.addIssue({
        code: 'custom',
        path: [sizes[1]!],
        message: `set only one of ${sizes.join(', ')} (they are one block size in different units)`,
      });
    if (p.maxPrefixBlocksToMatch !== undefined && p.maxPrefixTokensToMatch !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxPrefixTokensToMatch'],
        message: 'set only one of maxPrefixBlocksToMatch and maxPrefixTokensToMatch',
      });
    }
  })
  .transform((p) => {
    const blockBytes = p.blockSizeChars ?? p.hashBlockSize ?? (p.blockSize !== undefined ? p.blockSize * BYTES_PER_TOKEN : 256);
    const maxBlocks =
      p.maxPrefixBlocksToMatch ??
      (p.maxPrefixTokensToMatch !== undefined ? Math.max(1, Math.floor((p.maxPrefixTokensToMatch * BYTES_PER_TOKEN) / blockBytes)) : 256);
    return { blockBytes, maxBlocks, lruCapacityPerServer: p.lruCapacityPerServer };
  });

function contentText(content: ChatMessage['content']): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => p.text ?? '').join('\n');
  return '';
}

/**
 * Chat messages as one text, in order, so a conversation that grows keeps its prefix: each message's
 * role and content (and other fields such as tool_calls), then the tools and template variables last
 * (they are the same across a conversation's turns, and last so they do not hide the messages).
 */
export function canonicalChatText(request: Pick<InferenceRequest, 'messages' | 'tools' | 'chatTemplateKwargs'>): string {
  const lines = (request.messages ?? []).map((m) => {
    const { role, content, ...rest } = m;
    const extra = Object.keys(rest).length > 0 ? JSON.stringify(rest) : '';
    return JSON.stringify([role, contentText(content)]) + extra;
  });
  if (request.tools && request.tools.length > 0) lines.push(`tools:${JSON.stringify(request.tools)}`);
  if (request.chatTemplateKwargs) lines.push(`kwargs:${JSON.stringify(request.chatTemplateKwargs)}`);
  return lines.join('\n');
}

const encoder = new TextEncoder();

/** Hashes requests into block keys; reuses its buffers (the scheduler runs one cycle step at a time). */
export class BlockHasher {
  readonly #blockBytes: number;
  readonly #maxBlocks: number;
  #bytes: Uint8Array;
  readonly #hash = new Uint32Array(2);

  constructor(options: { blockBytes: number; maxBlocks: number }) {
    this.#blockBytes = options.blockBytes;
    this.#maxBlocks = options.maxBlocks;
    this.#bytes = new Uint8Array(0);
  }

  /** The request's bytes up to the hashing limit (UTF-8 text, or little-endian uint32 tokens); undefined without a prompt. */
  #input(request: InferenceRequest): { bytes: Uint8Array; length: number } | undefined {
    const limit = this.#blockBytes * this.#maxBlocks;
    if (this.#bytes.length < limit) this.#bytes = new Uint8Array(limit);
    const bytes = this.#bytes;
    if (request.tokens) {
      const n = Math.min(request.tokens.length, Math.floor(limit / 4));
      for (let i = 0; i < n; i++) {
        const t = request.tokens[i]! >>> 0;
        bytes[4 * i] = t & 0xff;
        bytes[4 * i + 1] = (t >>> 8) & 0xff;
        bytes[4 * i + 2] = (t >>> 16) & 0xff;
        bytes[4 * i + 3] = t >>> 24;
      }
      return { bytes, length: 4 * n };
    }
    let text: string | undefined;
    if (request.messages) text = canonicalChatText(request);
    else if (request.prompt !== undefined) text = request.prompt;
    if (text === undefined) return undefined;
    // A UTF-16 unit is at least one UTF-8 byte, so `limit` units are enough to fill the buffer.
    const { written } = encoder.encodeInto(text.length > limit ? text.slice(0, limit) : text, bytes);
    return { bytes, length: written };
  }

  /**
   * The request's chained block keys (full blocks only, at most maxBlocks), or undefined without a
   * prompt. Block i hashes with the previous block's hash as seed; block 0 with a hash of model and
   * cache_salt, so different models or salts never share blocks.
   */
  keys(request: InferenceRequest): Float64Array | undefined {
    const input = this.#input(request);
    if (!input) return undefined;
    const count = Math.min(this.#maxBlocks, Math.floor(input.length / this.#blockBytes));
    const keys = new Float64Array(count);
    const seed = encoder.encode(`${request.targetModel}\u0000${request.cacheSalt ?? ''}`);
    const h = this.#hash;
    xxh64Into(seed, 0, seed.length, 0, 0, h, 0);
    for (let i = 0; i < count; i++) {
      xxh64Into(input.bytes, i * this.#blockBytes, this.#blockBytes, h[0]!, h[1]!, h, 0);
      // 53 of the 64 bits: exact as a number, and collisions stay negligible at index sizes.
      keys[i] = (h[0]! & 0x1fffff) * 0x100000000 + h[1]!;
    }
    return keys;
  }
}

export const approxPrefixCacheProducer = definePlugin({
  type: 'approx-prefix-cache-producer',
  kind: 'producer',
  produces: 'prefix-match',
  parameters: ApproxParameters,
  create: (name, params, ctx) => {
    const hasher = new BlockHasher(params);
    const index = new ApproxPrefixIndex(params.lruCapacityPerServer);
    const lastSeen = new Map<string, number>();
    let lastSweep = ctx.now();

    /** Forgets endpoints that have not been a candidate for a while (gone from the pool). */
    const sweep = (cycle: CycleState): void => {
      for (const c of cycle.candidates) lastSeen.set(c.endpoint.address, cycle.now);
      if (cycle.now - lastSweep < SWEEP_EVERY_MS) return;
      lastSweep = cycle.now;
      for (const [address, seen] of lastSeen) {
        if (cycle.now - seen <= FORGET_ENDPOINT_AFTER_MS) continue;
        lastSeen.delete(address);
        index.remove(address);
        ctx.log.debug('approximate prefix index forgot an endpoint that is no longer a candidate', { address });
      }
    };

    return {
      kind: 'producer',
      type: 'approx-prefix-cache-producer',
      name,
      produces: 'prefix-match',
      produce: (cycle: CycleState): PrefixMatch => {
        sweep(cycle);
        const keys = hasher.keys(cycle.request);
        if (!keys) return { kind: 'no-input' };
        cycle.data.set(name, keys);
        const info = {
          totalBlocks: keys.length,
          matched: index.match(
            keys,
            keys.length,
            cycle.candidates.map((c) => c.endpoint.address),
          ),
        };
        if (!cycle.precisePrefix) cycle.prefix = info;
        return { kind: 'matched', info };
      },
      postPick: (cycle, outcome) => {
        const keys = cycle.data.get(name) as Float64Array | undefined;
        const first = outcome.targets[0];
        if (keys && first) index.add(first.endpoint.address, keys, keys.length);
      },
      close: () => index.clear(),
    };
  },
});
