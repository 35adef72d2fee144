import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { StreamTail, extractUsage } from './usage.ts';

describe('extractUsage', () => {
  it('reads the final usage of an SSE stream, skipping the usage: null of earlier events', () => {
    const sse =
      'data: {"choices":[{"text":"a"}],"usage":null}\n\n' +
      'data: {"choices":[],"usage":{"prompt_tokens":100,"completion_tokens":7,"total_tokens":107,"prompt_tokens_details":{"cached_tokens":64}}}\n\n' +
      'data: [DONE]\n\n';
    expect(extractUsage(sse)).toEqual({ promptTokens: 100, completionTokens: 7, cachedTokens: 64 });
  });

  it('reads usage at the end of a JSON body, with spaces and without cached tokens', () => {
    expect(
      extractUsage(
        '{"id":"x","choices":[{"message":{"content":"{\\"usage\\": {}}"}}], "usage" : { "prompt_tokens": 5, "completion_tokens": 1 }}',
      ),
    ).toEqual({
      promptTokens: 5,
      completionTokens: 1,
    });
    expect(extractUsage('{"usage":{"prompt_tokens":5,"prompt_tokens_details":null}}')).toEqual({ promptTokens: 5 });
  });

  it('ignores a usage object cut off by the end of the text and falls back to an earlier complete one', () => {
    expect(extractUsage('"usage":{"prompt_tokens":1,"completion_tokens":2} "usage":{"prompt_tokens":9')).toEqual({
      promptTokens: 1,
      completionTokens: 2,
    });
  });

  it('finds nothing when there is no usage, or no token counts in it', () => {
    expect(extractUsage('data: {"choices":[]}\n\n')).toBeNull();
    expect(extractUsage('{"usage":{"foo":1}}')).toBeNull();
    expect(extractUsage('')).toBeNull();
  });

  it('never throws on arbitrary text', () => {
    fc.assert(fc.property(fc.string(), (text) => void extractUsage(`${text}"usage":{${text}`)));
  });
});

describe('StreamTail', () => {
  it('keeps exactly the last bytes of the stream, whatever the chunking', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 50 })), fc.integer({ min: 1, max: 64 }), (chunks, max) => {
        const tail = new StreamTail(max);
        for (const c of chunks) tail.push(c);
        const all = Buffer.concat(chunks.map((c) => Buffer.from(c)));
        expect(tail.text()).toBe(all.subarray(Math.max(0, all.length - max)).toString('utf8'));
      }),
    );
  });
});
