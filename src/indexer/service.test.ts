import { describe, it, expect, beforeAll } from '@jest/globals';
import { silentLogger } from '../common/log.ts';
import { BlockIndex } from './index/block-index.ts';
import { vllmEngineKeys } from './keys/vllm.ts';
import { RequestError } from './service-request.ts';
import { IndexerService } from './service.ts';
import { TokenizerSet } from './tokenize/tokenizers.ts';
import type { BlockStoredEvent, ChatMessage } from './types.ts';

const BLOCK = 16;
const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';

function stored(tokens: number[], blocks: number, extra: Partial<BlockStoredEvent> = {}): BlockStoredEvent {
  const ids = tokens.slice(0, blocks * BLOCK);
  return {
    type: 'BlockStored',
    blockHashes: vllmEngineKeys(ids, { blockSize: BLOCK, hashSeed: null, loraName: extra.loraName ?? null, loraPath: extra.loraName ? '/adapters/a' : null }),
    parentBlockHash: null,
    tokenIds: Uint32Array.from(ids),
    blockSize: BLOCK,
    loraId: null,
    loraName: null,
    medium: null,
    extraKeys: null,
    groupIdx: null,
    kvCacheSpecKind: null,
    ...extra,
  };
}

describe('IndexerService (in-process PrefixScorer)', () => {
  let tokenizers: TokenizerSet;
  let index: BlockIndex;
  let service: IndexerService;
  const prompt = 'In-process scoring reads the same index the gRPC server reads. '.repeat(8);
  const messages: ChatMessage[] = [{ role: 'user', content: prompt }];

  beforeAll(async () => {
    tokenizers = new TokenizerSet({ sources: { [MODEL]: 'npm:llama3_1' } });
    await tokenizers.load();
    index = new BlockIndex({ blockSize: BLOCK, tierWeights: { gpu: 1, cpu: 0.25 } });
    service = new IndexerService({ index, tokenizers, log: silentLogger });
    const llama = tokenizers.get(MODEL);
    const promptTokens = llama.tokenizePrompt(prompt);
    const chatTokens = llama.tokenizeChat(messages);
    index.apply({ podId: 'gpu-pod', model: MODEL, dpRank: 0 }, { ts: 0, dpRank: null, events: [stored(promptTokens, 4), stored(chatTokens, 2)] });
    index.apply({ podId: 'cpu-pod', model: MODEL, dpRank: 0 }, { ts: 0, dpRank: null, events: [stored(promptTokens, 4, { medium: 'CPU' })] });
    index.apply({ podId: 'lora-pod', model: MODEL, dpRank: 0 }, { ts: 0, dpRank: null, events: [stored(promptTokens, 3, { loraName: 'adapter-a' })] });
  });

  it('scores a prompt with the BOS vLLM adds, weighted by tier, leaving out pods that match nothing', async () => {
    expect(await service.score({ model: MODEL, prompt })).toEqual({ scores: { 'gpu-pod': 4, 'cpu-pod': 1 } });
    // Without BOS the first block differs, so nothing matches: the prompt path must add it.
    expect(await service.score({ model: MODEL, tokens: tokenizers.get(MODEL).encode(prompt) })).toEqual({ scores: {} });
  });

  it('scores chat messages by their templated tokens', async () => {
    expect(await service.score({ model: MODEL, messages })).toEqual({ scores: { 'gpu-pod': 2 } });
  });

  it('passes the LoRA adapter and the pod filter to the index', async () => {
    expect(await service.score({ model: MODEL, prompt, loraName: 'adapter-a' })).toEqual({ scores: { 'lora-pod': 3 } });
    expect(await service.score({ model: MODEL, prompt, pods: ['cpu-pod'] })).toEqual({ scores: { 'cpu-pod': 1 } });
  });

  it('rejects requests without exactly one input, or for an unknown model, as client errors', async () => {
    await expect(service.score({ model: MODEL })).rejects.toThrow(RequestError);
    await expect(service.score({ model: MODEL, prompt, tokens: [1] })).rejects.toThrow(/exactly one of tokens, prompt or messages, got 2/);
    await expect(service.score({ model: 'nope', prompt })).rejects.toThrow(/model: no tokenizer for model "nope"/);
  });
});
