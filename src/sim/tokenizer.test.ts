import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { ChatMessageSchema, ChatToolSchema } from '../common/chat.ts';
import { TokenizerSet } from '../tokenize/tokenizers.ts';
import { loadSimTokenizer, type SimTokenizer } from './tokenizer.ts';

interface ToolChatCase {
  name: string;
  messages: unknown[];
  tools: unknown[];
  rendered: string;
  ids: number[];
}

// Rendered by transformers' apply_chat_template from what vLLM hands it (hack/golden/tokenize/generate_tools.py).
const golden = JSON.parse(readFileSync(new URL('./testdata/chat-tools-golden.json', import.meta.url), 'utf8')) as {
  models: Record<string, ToolChatCase[]>;
};

describe('tool-using chats', () => {
  const tokenizers = new TokenizerSet({ sources: { qwen3: 'npm:qwen3', llama3_1: 'npm:llama3_1' } });
  beforeAll(() => tokenizers.load());

  for (const [model, cases] of Object.entries(golden.models)) {
    for (const c of cases) {
      it(`renders and tokenizes "${c.name}" for ${model} exactly as vLLM's template call does`, () => {
        const messages = c.messages.map((m) => ChatMessageSchema.parse(m));
        const tools = c.tools.map((t) => ChatToolSchema.parse(t));
        const out = tokenizers.tokenizeNow(model, { messages, chat: { tools } });
        expect(out.rendered).toBe(c.rendered);
        expect(out.tokens).toEqual(c.ids);
      });
    }
  }
});

describe('loadSimTokenizer', () => {
  let inWorker: SimTokenizer;
  let inThread: SimTokenizer;
  beforeAll(async () => {
    [inWorker, inThread] = await Promise.all([
      loadSimTokenizer('m', 'npm:qwen3', { workers: 1 }),
      loadSimTokenizer('m', 'npm:qwen3', { workers: 0 }),
    ]);
  });
  afterAll(async () => {
    await inWorker.close();
    await inThread.close();
  });

  it('tokenizes the same in a worker thread as on the event loop', async () => {
    const c = golden.models.qwen3![1]!;
    const input = {
      messages: c.messages.map((m) => ChatMessageSchema.parse(m)),
      chat: { tools: c.tools.map((t) => ChatToolSchema.parse(t)) },
    };
    expect(await inWorker.tokenize(input)).toEqual(c.ids);
    expect(await inThread.tokenize(input)).toEqual(c.ids);
    expect(await inWorker.tokenize({ prompt: 'Hello world' })).toEqual(await inThread.tokenize({ prompt: 'Hello world' }));
  });

  it('refuses a negative worker count', async () => {
    await expect(loadSimTokenizer('m', 'npm:qwen3', { workers: -1 })).rejects.toThrow(/workers must be an integer >= 0/);
  });
});
