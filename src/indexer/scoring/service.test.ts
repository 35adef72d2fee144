import { describe, it, expect, beforeAll } from '@jest/globals';
import { Registry } from 'prom-client';
import { createLogger, silentLogger } from '../../common/log.ts';
import { BlockIndex } from '../index/block-index.ts';
import { RequestError, parseScoreBody } from './request.ts';
import { IndexerService } from './service.ts';
import { chatCrossingBlock, storedBlocks } from '../test-helpers.ts';
import { TokenizeShedError, TokenizerSet } from '../../tokenize/tokenizers.ts';
import type { ChatMessage } from '../types.ts';
import type { BlockStoredEvent } from '../../vllm/events/types.ts';

const BLOCK = 16;
const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';
const QWEN = 'Qwen/Qwen3-8B';

const stored = (tokens: number[], blocks: number, extra: Partial<BlockStoredEvent> = {}) =>
  storedBlocks(tokens, blocks, { blockSize: BLOCK, hashSeed: null }, extra);
/** The full blocks of a request: the totalBlocks every score result carries. */
const blocksOf = (tokens: readonly number[]) => Math.floor(tokens.length / BLOCK);

describe('IndexerService (in-process PrefixScorer)', () => {
  let tokenizers: TokenizerSet;
  let index: BlockIndex;
  let service: IndexerService;
  const prompt = 'In-process scoring reads the same index the gRPC server reads. '.repeat(8);
  const messages: ChatMessage[] = [{ role: 'user', content: prompt }];
  let promptBlocks: number;
  let chatBlocks: number;

  beforeAll(async () => {
    tokenizers = new TokenizerSet({ sources: { [MODEL]: 'npm:llama3_1', [QWEN]: 'npm:qwen3' } });
    await tokenizers.load();
    index = new BlockIndex({ blockSize: BLOCK, tierWeights: { gpu: 1, cpu: 0.25 } });
    service = new IndexerService({ index, tokenizers, log: silentLogger });
    const llama = tokenizers.get(MODEL);
    const promptTokens = llama.tokenizePrompt(prompt);
    const chatTokens = llama.tokenizeChat(messages);
    promptBlocks = blocksOf(promptTokens);
    chatBlocks = blocksOf(chatTokens);
    index.apply(
      { podId: 'gpu-pod', model: MODEL, dpRank: 0 },
      { ts: 0, dpRank: null, events: [stored(promptTokens, 4), stored(chatTokens, 2)] },
    );
    index.apply(
      { podId: 'cpu-pod', model: MODEL, dpRank: 0 },
      { ts: 0, dpRank: null, events: [stored(promptTokens, 4, { medium: 'CPU' })] },
    );
    index.apply(
      { podId: 'lora-pod', model: MODEL, dpRank: 0 },
      { ts: 0, dpRank: null, events: [stored(promptTokens, 3, { loraName: 'adapter-a' })] },
    );
  });

  it('scores a prompt with the BOS vLLM adds, weighted by tier, leaving out pods that match nothing', async () => {
    expect(await service.score({ model: MODEL, prompt })).toEqual({ scores: { 'gpu-pod': 4, 'cpu-pod': 1 }, totalBlocks: promptBlocks });
    // Without BOS the first block differs, so nothing matches: the prompt path must add it.
    const withoutBos = tokenizers.get(MODEL).encode(prompt);
    expect(await service.score({ model: MODEL, tokens: withoutBos })).toEqual({ scores: {}, totalBlocks: blocksOf(withoutBos) });
  });

  it('scores chat messages by their templated tokens', async () => {
    expect(await service.score({ model: MODEL, messages })).toEqual({ scores: { 'gpu-pod': 2 }, totalBlocks: chatBlocks });
  });

  it('passes the LoRA adapter and the pod filter to the index', async () => {
    expect(await service.score({ model: MODEL, prompt, loraName: 'adapter-a' })).toEqual({
      scores: { 'lora-pod': 3 },
      totalBlocks: promptBlocks,
    });
    expect(await service.score({ model: MODEL, prompt, pods: ['cpu-pod'] })).toEqual({
      scores: { 'cpu-pod': 1 },
      totalBlocks: promptBlocks,
    });
  });

  it('applies chat_template_kwargs and add_generation_prompt given in-process', async () => {
    const qwen = tokenizers.get(QWEN);
    const chat = chatCrossingBlock((m, kwargs) => qwen.tokenizeChat(m, { templateKwargs: kwargs }), { enable_thinking: false }, BLOCK);
    const blocks = Math.floor(chat.withKwargs.length / BLOCK);
    index.apply({ podId: 'qwen-pod', model: QWEN, dpRank: 0 }, { ts: 0, dpRank: null, events: [stored(chat.withKwargs, blocks)] });
    expect(await service.score({ model: QWEN, messages: chat.messages, chatTemplateKwargs: { enable_thinking: false } })).toEqual({
      scores: { 'qwen-pod': blocks },
      totalBlocks: blocks,
    });
    expect(await service.score({ model: QWEN, messages: chat.messages })).toEqual({
      scores: { 'qwen-pod': blocks - 1 },
      totalBlocks: blocksOf(chat.without),
    });
    const bare = qwen.tokenizeChat(chat.messages, { addGenerationPrompt: false });
    expect(bare.length).toBeLessThan(chat.without.length);
    expect(await service.tokenize(parseScoreBody({ model: QWEN, messages: chat.messages, add_generation_prompt: false }))).toMatchObject({
      tokens: bare,
    });
  });

  it('rejects in-process requests with the same field-naming errors as HTTP', async () => {
    await expect(service.score({ model: MODEL, prompt, chatTemplateKwargs: 'x' as unknown as Record<string, unknown> })).rejects.toThrow(
      /chat_template_kwargs: /,
    );
    await expect(service.score({ model: MODEL, prompt, bogus: 1 } as never)).rejects.toThrow(/bogus: unknown field/);
  });

  it('rejects requests without exactly one input, or for an unknown model, as client errors', async () => {
    await expect(service.score({ model: MODEL })).rejects.toThrow(RequestError);
    await expect(service.score({ model: MODEL, prompt, tokens: [1] })).rejects.toThrow(
      /exactly one of tokens, prompt or messages, got tokens and prompt/,
    );
    await expect(service.score({ model: 'nope', prompt })).rejects.toThrow(/model: no tokenizer for model "nope"/);
  });
});

describe('IndexerService: models and tokenizer fallbacks', () => {
  const prompt = 'Two models may well see the very same prompt tokens on different pods. '.repeat(6);
  let llamaTokens: number[];
  let index: BlockIndex;

  beforeAll(async () => {
    const llama = new TokenizerSet({ sources: { [MODEL]: 'npm:llama3_1' } });
    await llama.load();
    llamaTokens = llama.get(MODEL).tokenizePrompt(prompt);
    index = new BlockIndex({ blockSize: BLOCK });
    index.apply({ podId: 'llama-pod', model: MODEL, dpRank: 0 }, { ts: 0, dpRank: null, events: [stored(llamaTokens, 3)] });
    index.apply({ podId: 'qwen-pod', model: QWEN, dpRank: 0 }, { ts: 0, dpRank: null, events: [stored(llamaTokens, 2)] });
    index.apply(
      { podId: 'adapter-pod', model: QWEN, dpRank: 0 },
      { ts: 0, dpRank: null, events: [stored(llamaTokens, 4, { loraName: 'sql-adapter' })] },
    );
  });

  it('scores only the pods publishing under the requested model, and nothing for an unknown model', async () => {
    const tokenizers = new TokenizerSet({ sources: {} });
    const service = new IndexerService({ index, tokenizers, log: silentLogger });
    expect(await service.score({ model: MODEL, tokens: llamaTokens })).toEqual({
      scores: { 'llama-pod': 3 },
      totalBlocks: blocksOf(llamaTokens),
    });
    expect(await service.score({ model: QWEN, tokens: llamaTokens })).toEqual({
      scores: { 'qwen-pod': 2 },
      totalBlocks: blocksOf(llamaTokens),
    });
    expect(await service.score({ model: 'never/published', tokens: llamaTokens })).toEqual({
      scores: {},
      totalBlocks: blocksOf(llamaTokens),
    });
  });

  it('scores a request whose model is a configured LoRA adapter as that adapter, on pods of any model', async () => {
    const tokenizers = new TokenizerSet({ sources: {} });
    const service = new IndexerService({ index, tokenizers, log: silentLogger, loraAdapters: ['sql-adapter'] });
    expect(await service.score({ model: 'sql-adapter', tokens: llamaTokens })).toEqual({
      scores: { 'adapter-pod': 4 },
      totalBlocks: blocksOf(llamaTokens),
    });
    expect(await service.score({ model: 'sql-adapter', tokens: llamaTokens, loraName: 'sql-adapter' })).toEqual({
      scores: { 'adapter-pod': 4 },
      totalBlocks: blocksOf(llamaTokens),
    });
    // Not configured as an adapter: an unknown model, so nothing scores.
    const plain = new IndexerService({ index, tokenizers, log: silentLogger });
    expect(await plain.score({ model: 'sql-adapter', tokens: llamaTokens })).toEqual({ scores: {}, totalBlocks: blocksOf(llamaTokens) });
  });

  it("tokenizes a model without a configured tokenizer with its family's or the default one, warning once per model", async () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = createLogger({ level: 'warn', write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) });
    const tokenizers = new TokenizerSet({ sources: {}, defaultSource: 'npm:qwen3' });
    await tokenizers.load();
    const service = new IndexerService({ index, tokenizers, log });
    const qwen = new TokenizerSet({ sources: { q: 'npm:qwen3' } });
    await qwen.load();
    // A Llama 3.1 fine-tune by its served name: the Llama 3.1 tokenizer, so the llama pod's blocks match.
    const llamaFamily = 'meta-llama/Llama-3.1-8B-Instruct-finetune';
    index.apply({ podId: 'finetune-pod', model: llamaFamily, dpRank: 0 }, { ts: 0, dpRank: null, events: [stored(llamaTokens, 3)] });
    expect(await service.score({ model: llamaFamily, prompt })).toEqual({
      scores: { 'finetune-pod': 3 },
      totalBlocks: blocksOf(llamaTokens),
    });
    expect(await service.score({ model: llamaFamily, prompt })).toEqual({
      scores: { 'finetune-pod': 3 },
      totalBlocks: blocksOf(llamaTokens),
    });
    const custom = await service.tokenize(parseScoreBody({ model: 'acme/custom-model', prompt }));
    expect(custom.tokens).toEqual(qwen.get('q').tokenizePrompt(prompt));
    await service.tokenize(parseScoreBody({ model: 'acme/custom-model', messages: [{ role: 'user', content: prompt }] }));
    const warnings = lines.filter(
      (l) => l.msg === 'no tokenizer configured for model: using a fallback (set --tokenizer MODEL=SOURCE to choose)',
    );
    expect(warnings.map((w) => [w.model, w.source, w.reason])).toEqual([
      [llamaFamily, 'npm:llama3_1', 'family'],
      ['acme/custom-model', 'npm:qwen3', 'default'],
    ]);
  });

  it('rejects a model without a tokenizer when the fallback is "none", and a bad default source at load', async () => {
    const none = new TokenizerSet({ sources: {}, defaultSource: 'none' });
    await none.load();
    const service = new IndexerService({ index, tokenizers: none, log: silentLogger });
    await expect(service.score({ model: 'Qwen/Qwen3-0.6B', prompt })).rejects.toThrow(/model: no tokenizer for model "Qwen\/Qwen3-0.6B"/);
    await expect(new TokenizerSet({ sources: {}, defaultSource: 'npm:nope' }).load()).rejects.toThrow(
      /defaultTokenizer: .*unknown npm tokenizer "nope"/,
    );
  });
});

describe('IndexerService: shedding calls nobody waits for', () => {
  const prompt = 'A call whose caller gave up must cost nothing more. '.repeat(6);
  let registry: Registry;
  let scored: number;
  let service: IndexerService;
  let clock: number;
  const tokenizations = async () =>
    Number(/_count\{[^}]*\} (\d+)/.exec(await registry.getSingleMetricAsString('kvroute_tokenize_duration_seconds'))?.[1] ?? 0);
  const shed = async (reason: string) =>
    Number(
      new RegExp(`reason="${reason}"\\} (\\d+)`).exec(await registry.getSingleMetricAsString('kvroute_indexer_score_shed_total'))?.[1],
    );

  beforeAll(async () => {
    registry = new Registry();
    const tokenizers = new TokenizerSet({ sources: { [MODEL]: 'npm:llama3_1' }, registry });
    await tokenizers.load();
    const index = new BlockIndex({ blockSize: BLOCK });
    // The real index, counting the scores it is asked for.
    const counting = {
      blockSize: index.blockSize,
      scoreTokens: (...args: Parameters<BlockIndex['scoreTokens']>) => (scored++, index.scoreTokens(...args)),
    };
    service = new IndexerService({ index: counting, tokenizers, log: silentLogger, registry, now: () => clock });
  });

  it('neither tokenizes nor scores a call already cancelled or past its deadline, and counts it by reason', async () => {
    scored = 0;
    // The tokenizers read Date.now(): the service's clock starts there, so deadlines mean the same to both.
    clock = Date.now();
    const cancelled = new AbortController();
    cancelled.abort();
    const request = parseScoreBody({ model: MODEL, prompt });
    await expect(service.scoreParsed(request, { signal: cancelled.signal })).rejects.toMatchObject({ reason: 'cancelled' });
    await expect(service.scoreParsed(request, { deadline: clock })).rejects.toBeInstanceOf(TokenizeShedError);
    expect(await tokenizations()).toBe(0);
    expect(scored).toBe(0);
    expect([await shed('cancelled'), await shed('deadline'), await shed('overloaded')]).toEqual([1, 1, 0]);
    // A live call goes through.
    await expect(service.scoreParsed(request, { deadline: clock + 600_000, signal: new AbortController().signal })).resolves.toMatchObject({
      scores: {},
    });
    expect(scored).toBe(1);
  });

  it('does not score a call cancelled while its prompt was being tokenized', async () => {
    scored = 0;
    const before = await tokenizations();
    const caller = new AbortController();
    // In-thread tokenization is done by the time scoreParsed first yields; the caller gives up then.
    const pending = service.scoreParsed(parseScoreBody({ model: MODEL, prompt }), { signal: caller.signal });
    caller.abort();
    await expect(pending).rejects.toMatchObject({ reason: 'cancelled' });
    expect(await tokenizations()).toBe(before + 1);
    expect(scored).toBe(0);
  });
});
