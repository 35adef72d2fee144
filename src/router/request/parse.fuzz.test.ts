// Fuzzes the router's OpenAI request parser: completions and chat bodies with every field of the
// wrong type, odd content parts, tools, huge n, any unicode (lone surrogates, NUL, emoji), invalid
// UTF-8, deep nesting and __proto__ keys, plus any path. The contract: a ParsedBody, or a
// RequestParseError with a message (the router's 400); never another exception; and whatever parses
// can be re-serialized with another model (the router's model rewrite) without throwing.

import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { fuzzParams, fuzzTimeout } from '../../../test/support/fuzz.ts';
import { MAX_JSON_DEPTH, RequestParseError, parseRequestBody, withModel, type ParsedBody } from './parse.ts';

const PATHS = ['/v1/completions', '/v1/chat/completions', '/v1/chat/completions/', '/v1/embeddings', '/v1/models', '/'];

/** Parses, failing the property on anything but a ParsedBody or a RequestParseError with a message. */
function parse(path: string, body: Uint8Array): ParsedBody | RequestParseError {
  try {
    const parsed = parseRequestBody(path, body);
    expect(typeof parsed.model).toBe('string');
    expect(typeof parsed.stream).toBe('boolean');
    if (parsed.kind !== 'other') expect(parsed.model.length).toBeGreaterThan(0);
    if (parsed.tokens) for (const t of parsed.tokens) expect(Number.isInteger(t) && t >= 0 && t <= 0xffffffff).toBe(true);
    if (parsed.json) {
      // The model rewrite must work on anything that parsed.
      const rewritten = JSON.parse(withModel(parsed.json, 'target').toString('utf8')) as Record<string, unknown>;
      expect(rewritten.model).toBe('target');
    }
    return parsed;
  } catch (err) {
    if (!(err instanceof RequestParseError))
      throw new Error(`parser threw ${String(err)} for ${Buffer.from(body).toString('utf8').slice(0, 200)}`);
    expect(err.message.length).toBeGreaterThan(0);
    return err;
  }
}

const text = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.constantFrom('\u0000', '\ud800', '\udfff x', '👩‍👩‍👧‍👦', '\u202e', ''),
);
const anything = fc.anything({ maxDepth: 3, withBigInt: false, withObjectString: true, withNullPrototype: true });
const contentPart = fc.oneof(
  fc.record({ type: fc.constant('text'), text }),
  fc.record(
    { type: fc.constantFrom('image_url', 'input_audio', 'file', 'video_url', ''), image_url: anything, text: anything },
    { requiredKeys: ['type'] },
  ),
  anything,
);
const chatMessage = fc.record(
  {
    role: fc.oneof(fc.constantFrom('user', 'system', 'assistant', 'tool', 'developer', ''), anything),
    content: fc.oneof(text, fc.array(contentPart, { maxLength: 4 }), fc.constant(null), anything),
    name: anything,
    tool_calls: fc.oneof(
      fc.array(fc.record({ type: fc.constant('function'), function: fc.record({ name: text, arguments: fc.oneof(text, anything) }) })),
      anything,
    ),
    tool_call_id: anything,
    __proto__: anything,
  },
  { requiredKeys: ['role'] },
);
const tool = fc.oneof(
  fc.record({
    type: fc.constant('function'),
    function: fc.record({ name: text, description: anything, parameters: anything, strict: anything }, { requiredKeys: ['name'] }),
  }),
  anything,
);
const field = <T>(right: fc.Arbitrary<T>) => fc.oneof({ weight: 3, arbitrary: right }, { weight: 1, arbitrary: anything });

const requestObject = fc.record(
  {
    model: field(fc.oneof(fc.constantFrom('m', 'meta-llama/Llama-3.1-8B-Instruct'), text)),
    prompt: field(
      fc.oneof(
        text,
        fc.array(text, { maxLength: 3 }),
        fc.array(fc.integer({ min: -1, max: 2 ** 32 }), { maxLength: 5 }),
        fc.array(fc.array(fc.nat()), { maxLength: 3 }),
      ),
    ),
    messages: field(fc.array(chatMessage, { maxLength: 4 })),
    tools: field(fc.array(tool, { maxLength: 3 })),
    n: fc.oneof(fc.integer(), fc.constantFrom(1e308, -1, 2 ** 53 + 1, 0.5)),
    stream: field(fc.boolean()),
    cache_salt: field(text),
    chat_template_kwargs: field(fc.dictionary(text, anything, { maxKeys: 3 })),
    add_generation_prompt: field(fc.boolean()),
    max_tokens: anything,
  },
  { requiredKeys: [] },
);

/** A JSON text: the object above, or any JSON value; JSON.stringify leaves lone surrogates escaped. */
const jsonText = fc
  .oneof({ weight: 4, arbitrary: requestObject }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }) })
  .map((v) => JSON.stringify(v) ?? 'null');

describe('parseRequestBody under hostile bodies (fast-check, fixed seed)', () => {
  it(
    'answers any JSON body on any path with a ParsedBody or a RequestParseError',
    () => {
      fc.assert(
        fc.property(fc.constantFrom(...PATHS), jsonText, (path, json) => void parse(path, Buffer.from(json, 'utf8'))),
        fuzzParams(3000),
      );
    },
    fuzzTimeout(3000, 60_000),
  );

  it(
    'answers any bytes (invalid UTF-8, truncated JSON, NUL) the same way',
    () => {
      fc.assert(
        fc.property(
          fc.constantFrom(...PATHS),
          fc.oneof(
            fc.uint8Array({ maxLength: 200 }),
            fc.tuple(jsonText, fc.nat()).map(([j, at]) => Buffer.from(j, 'utf8').subarray(0, at % (j.length + 1))),
            fc.tuple(jsonText, fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 4 })).map(([j, at, junk]) => {
              const b = Buffer.from(j, 'utf8');
              const i = at % (b.length + 1);
              return Buffer.concat([b.subarray(0, i), junk, b.subarray(i)]);
            }),
          ),
          (path, bytes) => void parse(path, bytes),
        ),
        fuzzParams(3000),
      );
    },
    fuzzTimeout(3000, 60_000),
  );

  it(
    `refuses completions and chat bodies nested deeper than ${MAX_JSON_DEPTH} levels, and passes other paths on untouched`,
    () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 30_000 }), fc.constantFrom(...PATHS), fc.constantFrom('[', '{"a":'), (depth, path, open) => {
          const close = open === '[' ? ']' : '}';
          const nested = `${open.repeat(depth)}${close.repeat(depth)}`;
          const body = Buffer.from(
            `{"model":"m","prompt":"x","messages":[{"role":"user","content":"x"}],"chat_template_kwargs":{"k":${nested}}}`,
          );
          const out = parse(path, body);
          // The body is 2 levels deep before `nested` starts.
          if (depth + 2 > MAX_JSON_DEPTH) {
            if (path === '/v1/completions' || path.startsWith('/v1/chat')) expect(out).toBeInstanceOf(RequestParseError);
            else expect(out).toMatchObject({ kind: 'other', model: '' });
          }
        }),
        fuzzParams(200),
      );
    },
    fuzzTimeout(200, 60_000),
  );

  it('refuses a completions body with invalid UTF-8 naming the encoding', () => {
    const out = parse(
      '/v1/completions',
      Buffer.concat([Buffer.from('{"model":"m","prompt":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]),
    );
    expect(out).toBeInstanceOf(RequestParseError);
    expect((out as Error).message).toMatch(/not valid UTF-8/);
  });
});
