import { describe, it, expect, beforeAll } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChatMessage } from '../common/chat.ts';
import { loadModelTokenizer, TokenizeInputError, type ModelTokenizer } from './model-tokenizer.ts';
import { parseTokenizerSource } from './source.ts';

interface GoldenText {
  text: string;
  prompt: number[];
  plain: number[];
}
interface GoldenChat {
  messages: ChatMessage[];
  rendered: string;
  tokens: number[];
}
interface Golden {
  models: Record<string, { texts: GoldenText[]; chats: GoldenChat[]; harmonyStartDate?: string }>;
}

const here = path.dirname(fileURLToPath(import.meta.url));
const golden = JSON.parse(fs.readFileSync(path.join(here, 'testdata', 'golden.json'), 'utf8')) as Golden;
const MODELS = ['qwen3', 'llama3_1', 'gptoss'] as const;

describe.each(MODELS)('npm tokenizer %s against HF tokenizers/transformers golden ids', (name) => {
  let tokenizer: ModelTokenizer;
  const entry = golden.models[name]!;
  beforeAll(async () => {
    tokenizer = await loadModelTokenizer(name, parseTokenizerSource(`npm:${name}`), { harmonyStartDate: entry.harmonyStartDate });
  });

  it('has golden texts and chats for this model to compare with', () => {
    expect(entry.texts.length).toBeGreaterThan(0);
    expect(entry.chats.length).toBeGreaterThan(0);
  });

  it('encodes every golden text exactly, with and without special tokens added', () => {
    for (const t of entry.texts) {
      expect({ text: t.text, ids: tokenizer.tokenizePrompt(t.text) }).toEqual({ text: t.text, ids: t.prompt });
      expect({ text: t.text, ids: tokenizer.encode(t.text) }).toEqual({ text: t.text, ids: t.plain });
    }
  });

  it('gives the same ids from a warm cache as from a cold one', () => {
    for (const t of entry.texts) expect(tokenizer.tokenizePrompt(t.text)).toEqual(t.prompt);
  });

  it('renders chats exactly as vLLM does (apply_chat_template, or openai-harmony for gpt-oss) and encodes them without added specials', () => {
    for (const c of entry.chats) {
      expect(tokenizer.renderChat(c.messages)).toBe(c.rendered);
      expect(tokenizer.tokenizeChat(c.messages)).toEqual(c.tokens);
    }
  });
});

describe('shared-prefix reuse', () => {
  let tokenizer: ModelTokenizer;
  beforeAll(async () => {
    tokenizer = await loadModelTokenizer('llama', parseTokenizerSource('llama3_1'), { chunkChars: 64 });
  });

  it('matches a cold tokenizer on prompts that share a long prefix and diverge anywhere', async () => {
    const cold = await loadModelTokenizer('llama-cold', parseTokenizerSource('llama3_1'), { chunkChars: 1 << 30 });
    const lines = [
      'Système: réponds en français.',
      'Data 12345 and 6789',
      '    indented code();',
      'Ünïcödé text\twith tabs',
      '你好世界',
      "it's what we'd do",
      '',
      '!!! punctuation ???',
    ];
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const shared = Array.from({ length: 60 }, () => lines[rand(lines.length)]).join('\n');
    for (let i = 0; i < 40; i++) {
      const cut = rand(shared.length);
      const tail = Array.from({ length: 5 }, () => lines[rand(lines.length)]).join(rand(2) ? '\n' : ' ');
      const text = shared.slice(0, cut) + tail;
      expect(tokenizer.tokenizePrompt(text)).toEqual(cold.tokenizePrompt(text));
    }
  });

  it('tokenizes exactly with the cache disabled and never reports a hit', async () => {
    const lookups: boolean[] = [];
    const t = await loadModelTokenizer('qwen', parseTokenizerSource('qwen3'), { maxBytes: 0, onLookup: (hit) => lookups.push(hit) });
    for (const g of golden.models.qwen3!.texts) expect(t.tokenizePrompt(g.text)).toEqual(g.prompt);
    for (const g of golden.models.qwen3!.texts) expect(t.tokenizePrompt(g.text)).toEqual(g.prompt);
    expect(lookups.length).toBeGreaterThan(0);
    expect(lookups.every((hit) => !hit)).toBe(true);
  });

  it('serves the shared prefix of a second prompt from the cache', async () => {
    const lookups: boolean[] = [];
    const t = await loadModelTokenizer('qwen', parseTokenizerSource('qwen3'), { chunkChars: 256, onLookup: (hit) => lookups.push(hit) });
    const doc = Array.from({ length: 50 }, (_, i) => `Line ${i}: the cache keeps what was computed.`).join('\n');
    t.tokenizePrompt(`${doc}\nQuestion one?`);
    lookups.length = 0;
    t.tokenizePrompt(`${doc}\nQuestion two?`);
    expect(lookups.filter((h) => h).length).toBeGreaterThan(0);
    expect(lookups[lookups.length - 1]).toBe(false);
  });

  it('serves earlier chat turns from the cache when a conversation grows', async () => {
    const lookups: boolean[] = [];
    const t = await loadModelTokenizer('qwen', parseTokenizerSource('qwen3'), { onLookup: (hit) => lookups.push(hit) });
    const turns: ChatMessage[] = [
      { role: 'system', content: 'You are a careful assistant.' },
      { role: 'user', content: 'First question?' },
    ];
    t.tokenizeChat(turns);
    lookups.length = 0;
    t.tokenizeChat([...turns, { role: 'assistant', content: 'First answer.' }, { role: 'user', content: 'Second question?' }]);
    expect(lookups.slice(0, 3)).toEqual([true, true, true]);
  });
});

describe('gpt-oss through tiktoken o200k_harmony', () => {
  it('encodes every golden text as the gpt-oss tokenizer.json does', async () => {
    const t = await loadModelTokenizer('gpt-oss', parseTokenizerSource('tiktoken:o200k_harmony'));
    for (const g of golden.models.gptoss!.texts)
      expect({ text: g.text, ids: t.tokenizePrompt(g.text) }).toEqual({ text: g.text, ids: g.prompt });
  });

  it('renders harmony chats exactly as openai-harmony does', async () => {
    const entry = golden.models.gptoss!;
    const t = await loadModelTokenizer('gpt-oss', parseTokenizerSource('tiktoken:o200k_harmony'), {
      harmonyStartDate: entry.harmonyStartDate,
    });
    expect(entry.chats.length).toBeGreaterThan(0);
    for (const c of entry.chats) {
      expect(t.renderChat(c.messages)).toBe(c.rendered);
      expect(t.tokenizeChat(c.messages)).toEqual(c.tokens);
    }
  });

  it('rejects a tool turn with an error naming the message', async () => {
    const t = await loadModelTokenizer('gpt-oss', parseTokenizerSource('tiktoken:o200k_harmony'));
    expect(() =>
      t.tokenizeChat([
        { role: 'user', content: 'x' },
        { role: 'tool', content: 'y' },
      ]),
    ).toThrow(/messages\[1\]\.role/);
  });
});

describe('tokenizer sources', () => {
  it('rejects unknown sources with the accepted forms', () => {
    expect(() => parseTokenizerSource('tiktoken:nope')).toThrow(/unknown tiktoken encoding "nope"/);
    expect(() => parseTokenizerSource('mistral')).toThrow(/expected npm:/);
  });

  it('loads a tokenizer from a directory and refuses chat for a model without a template', async () => {
    const shipped = parseTokenizerSource('gptoss');
    if (shipped.kind !== 'npm') throw new Error('expected an npm source');
    const t = await loadModelTokenizer('plain', parseTokenizerSource(`dir:${shipped.dir}`));
    expect(t.encode('Hello world')).toEqual(golden.models.gptoss!.texts[0]!.plain);
    const cl = await loadModelTokenizer('cl', parseTokenizerSource('tiktoken:cl100k_base'));
    expect(() => cl.tokenizeChat([{ role: 'user', content: 'hi' }])).toThrow(TokenizeInputError);
  });

  it('uses chat_template.jinja beside the tokenizer when tokenizer_config.json has no template', async () => {
    const shipped = parseTokenizerSource('qwen3');
    if (shipped.kind !== 'npm') throw new Error('expected an npm source');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-tok-'));
    const config = JSON.parse(fs.readFileSync(path.join(shipped.dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(path.join(dir, 'chat_template.jinja'), config.chat_template as string);
    delete config.chat_template;
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config));
    fs.symlinkSync(path.join(shipped.dir, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    try {
      const t = await loadModelTokenizer('qwen-dir', parseTokenizerSource(dir));
      const chat = golden.models.qwen3!.chats[1]!;
      expect(t.tokenizeChat(chat.messages)).toEqual(chat.tokens);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the missing file of a bad directory', async () => {
    await expect(loadModelTokenizer('x', parseTokenizerSource('dir:/nonexistent-kvroute'))).rejects.toThrow(/tokenizer\.json/);
  });
});
