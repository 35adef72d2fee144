// Test-only fixtures shared by the indexer's unit and e2e tests: chats that exercise template
// options, and BlockStored events hashed as vLLM hashes them.

import { vllmEngineKeys } from '../vllm/block-hash.ts';
import type { ChatMessage } from './types.ts';
import type { BlockStoredEvent } from '../vllm/events/types.ts';

/**
 * A chat whose rendering with `kwargs` fills one more full block of `blockSize` tokens than without
 * (e.g. Qwen3's enable_thinking=false adds an empty think section after the generation prompt), so
 * a score tells whether the kwargs reached the chat template.
 */
export function chatCrossingBlock(
  tokenizeChat: (messages: ChatMessage[], kwargs?: Record<string, unknown>) => number[],
  kwargs: Record<string, unknown>,
  blockSize: number,
): { messages: ChatMessage[]; withKwargs: number[]; without: number[] } {
  for (let words = 1; words <= 4 * blockSize; words++) {
    const messages: ChatMessage[] = [{ role: 'user', content: `Which pod should serve this? ${'cache '.repeat(words)}` }];
    const withKwargs = tokenizeChat(messages, kwargs);
    const without = tokenizeChat(messages);
    if (Math.floor(withKwargs.length / blockSize) > Math.floor(without.length / blockSize)) return { messages, withKwargs, without };
  }
  throw new Error(`no message length makes the kwargs ${JSON.stringify(kwargs)} cross a block boundary`);
}

/**
 * A BlockStored of the first `blocks` full blocks of `tokens`, hashed as vLLM 0.33 does with
 * sha256_cbor (a LoRA adapter gets the path `/adapters/<name>`); `extra` overrides any field.
 */
export function storedBlocks(
  tokens: number[],
  blocks: number,
  opts: { blockSize: number; hashSeed: string | null },
  extra: Partial<BlockStoredEvent> = {},
): BlockStoredEvent {
  const ids = tokens.slice(0, blocks * opts.blockSize);
  const loraName = extra.loraName ?? null;
  return {
    type: 'BlockStored',
    blockHashes: vllmEngineKeys(ids, { ...opts, loraName, loraPath: loraName === null ? null : `/adapters/${loraName}` }),
    parentBlockHash: null,
    tokenIds: Uint32Array.from(ids),
    blockSize: opts.blockSize,
    loraId: null,
    loraName: null,
    medium: null,
    extraKeys: null,
    groupIdx: null,
    kvCacheSpecKind: null,
    ...extra,
  };
}
