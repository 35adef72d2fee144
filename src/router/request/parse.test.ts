import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { RequestParseError, parseRequestBody, requestKind, requestPath, withModel } from './parse.ts';

const body = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));

function parseError(path: string, raw: unknown): string {
  try {
    parseRequestBody(path, body(raw));
  } catch (err) {
    expect(err).toBeInstanceOf(RequestParseError);
    return (err as Error).message;
  }
  throw new Error('expected a RequestParseError');
}

describe('request paths', () => {
  it('strips the query string and fragment from :path', () => {
    expect(requestPath('/v1/completions?x=1')).toBe('/v1/completions');
    expect(requestPath('/v1/chat/completions#frag')).toBe('/v1/chat/completions');
    expect(requestPath('/v1/models')).toBe('/v1/models');
  });

  it('knows completions and chat (with or without a trailing slash); everything else is other', () => {
    expect(requestKind('/v1/completions')).toBe('completions');
    expect(requestKind('/v1/chat/completions/')).toBe('chat');
    expect(requestKind('/v1/embeddings')).toBe('other');
    expect(requestKind('/')).toBe('other');
  });
});

describe('parseRequestBody: /v1/completions', () => {
  it('reads model, a string prompt, stream and cache_salt', () => {
    const parsed = parseRequestBody(
      '/v1/completions',
      body({ model: 'm', prompt: 'hello', stream: true, cache_salt: 'salt', max_tokens: 5 }),
    );
    expect(parsed).toMatchObject({ kind: 'completions', model: 'm', prompt: 'hello', stream: true, cacheSalt: 'salt' });
    expect(parsed.tokens).toBeUndefined();
    expect(parsed.json).toEqual({ model: 'm', prompt: 'hello', stream: true, cache_salt: 'salt', max_tokens: 5 });
  });

  it('unwraps a one-element prompt list and reads token ids as tokens', () => {
    expect(parseRequestBody('/v1/completions', body({ model: 'm', prompt: ['only'] })).prompt).toBe('only');
    const tokens = parseRequestBody('/v1/completions', body({ model: 'm', prompt: [1, 2, 3] }));
    expect(tokens.tokens).toEqual([1, 2, 3]);
    expect(tokens.prompt).toBeUndefined();
    expect(parseRequestBody('/v1/completions', body({ model: 'm', prompt: [[4, 5], [6]] })).tokens).toEqual([4, 5]);
  });

  it('routes a batch of prompts by its first prompt', () => {
    expect(parseRequestBody('/v1/completions', body({ model: 'm', prompt: ['first', 'second'] })).prompt).toBe('first');
  });

  it('defaults stream to false', () => {
    expect(parseRequestBody('/v1/completions', body({ model: 'm', prompt: 'x' })).stream).toBe(false);
  });

  it('rejects a missing or malformed prompt, naming the field', () => {
    expect(parseError('/v1/completions', { model: 'm' })).toMatch(/^prompt: expected a string/);
    expect(parseError('/v1/completions', { model: 'm', prompt: [1, 'a'] })).toMatch(/^prompt: /);
    expect(parseError('/v1/completions', { model: 'm', prompt: [-1] })).toMatch(/^prompt: /);
    expect(parseError('/v1/completions', { model: 'm', prompt: [] })).toMatch(/^prompt: /);
    expect(parseError('/v1/completions', { model: 'm', prompt: 7 })).toMatch(/^prompt: /);
  });

  it('rejects a missing, empty or non-string model', () => {
    expect(parseError('/v1/completions', { prompt: 'x' })).toMatch(/^model: expected the model name/);
    expect(parseError('/v1/completions', { model: '', prompt: 'x' })).toMatch(/^model: /);
    expect(parseError('/v1/completions', { model: 3, prompt: 'x' })).toMatch(/^model: /);
  });

  it('rejects bodies that are not a JSON object', () => {
    expect(parseError('/v1/completions', '')).toMatch(/empty/);
    expect(parseError('/v1/completions', '{"model":')).toMatch(/not valid JSON/);
    expect(parseError('/v1/completions', '[1,2]')).toMatch(/expected a JSON object/);
    expect(parseError('/v1/completions', 'null')).toMatch(/expected a JSON object/);
  });

  it('rejects a mistyped stream or cache_salt', () => {
    expect(parseError('/v1/completions', { model: 'm', prompt: 'x', stream: 'yes' })).toMatch(/^stream: /);
    expect(parseError('/v1/completions', { model: 'm', prompt: 'x', cache_salt: 5 })).toMatch(/^cache_salt: /);
  });
});

describe('parseRequestBody: /v1/chat/completions', () => {
  it('reads messages, tools, chat_template_kwargs and add_generation_prompt', () => {
    const tools = [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }];
    const parsed = parseRequestBody(
      '/v1/chat/completions',
      body({
        model: 'm',
        messages: [{ role: 'user', content: 'hi' }],
        tools,
        chat_template_kwargs: { enable_thinking: false },
        add_generation_prompt: false,
        stream: true,
      }),
    );
    expect(parsed).toMatchObject({
      kind: 'chat',
      model: 'm',
      messages: [{ role: 'user', content: 'hi' }],
      tools,
      chatTemplateKwargs: { enable_thinking: false },
      addGenerationPrompt: false,
      stream: true,
    });
  });

  it('leaves unset optional fields absent', () => {
    const parsed = parseRequestBody('/v1/chat/completions', body({ model: 'm', messages: [{ role: 'user', content: 'hi' }], tools: null }));
    expect(Object.keys(parsed).sort()).toEqual(['json', 'kind', 'messages', 'model', 'path', 'stream']);
  });

  it('rejects missing, empty or malformed messages, naming the field', () => {
    expect(parseError('/v1/chat/completions', { model: 'm' })).toMatch(/^messages: /);
    expect(parseError('/v1/chat/completions', { model: 'm', messages: [] })).toMatch(/^messages: expected at least one message/);
    expect(parseError('/v1/chat/completions', { model: 'm', messages: [{ content: 'x' }] })).toMatch(/^messages\.0\.role: /);
    expect(parseError('/v1/chat/completions', { model: 'm', messages: [{ role: 'user' }], tools: [{ type: 'function' }] })).toMatch(
      /^tools\.0\.function: /,
    );
    expect(parseError('/v1/chat/completions', { model: 'm', messages: [{ role: 'user' }], chat_template_kwargs: [1] })).toMatch(
      /^chat_template_kwargs: /,
    );
  });
});

describe('parseRequestBody: other paths', () => {
  it('passes any body through, reading the model when it is a JSON object with one', () => {
    expect(parseRequestBody('/v1/embeddings', body({ model: 'e', input: 'x' }))).toMatchObject({ kind: 'other', model: 'e' });
    expect(parseRequestBody('/upload', Buffer.from([0xff, 0x00, 0x12]))).toEqual({
      kind: 'other',
      path: '/upload',
      model: '',
      stream: false,
    });
    expect(parseRequestBody('/v1/models', Buffer.alloc(0))).toEqual({ kind: 'other', path: '/v1/models', model: '', stream: false });
  });

  it('never throws, whatever the bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        expect(parseRequestBody('/anything', bytes).kind).toBe('other');
      }),
    );
  });
});

describe('parseRequestBody: any input to an inference path', () => {
  it('either parses or throws a RequestParseError, never anything else', () => {
    fc.assert(
      fc.property(fc.constantFrom('/v1/completions', '/v1/chat/completions'), fc.oneof(fc.json(), fc.string()), (path, text) => {
        try {
          parseRequestBody(path, Buffer.from(text));
        } catch (err) {
          expect(err).toBeInstanceOf(RequestParseError);
        }
      }),
    );
  });
});

describe('withModel', () => {
  it('replaces the model and keeps the other fields in order', () => {
    expect(withModel({ a: 1, model: 'x', b: [true] }, 'y').toString()).toBe('{"a":1,"model":"y","b":[true]}');
  });
});
