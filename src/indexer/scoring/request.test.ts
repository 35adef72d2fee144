import { describe, it, expect } from '@jest/globals';
import { RequestError, parseScoreBody, scoreBodyOf } from './request.ts';

function error(body: unknown): string {
  try {
    parseScoreBody(body);
  } catch (err) {
    expect(err).toBeInstanceOf(RequestError);
    return (err as Error).message;
  }
  throw new Error('expected a RequestError');
}

describe('score request bodies', () => {
  it('maps snake_case options onto the ScoreRequest', () => {
    expect(parseScoreBody({ model: 'm', tokens: [1, 2], lora_name: 'l', cache_salt: 's', pods: ['a'] })).toEqual({
      model: 'm',
      tokens: [1, 2],
      loraName: 'l',
      cacheSalt: 's',
      pods: ['a'],
    });
  });

  it('maps chat options onto the ScoreRequest', () => {
    const parsed = parseScoreBody({
      model: 'm',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }],
      add_generation_prompt: false,
      chat_template_kwargs: { enable_thinking: false },
    });
    expect(parsed).toEqual({
      model: 'm',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }],
      addGenerationPrompt: false,
      chatTemplateKwargs: { enable_thinking: false },
    });
  });

  it('turns an in-process ScoreRequest into the wire body, and back unchanged', () => {
    const request = {
      model: 'm',
      messages: [{ role: 'user', content: 'hi' }],
      loraName: 'l',
      cacheSalt: 's',
      pods: ['a'],
      chatTemplateKwargs: { k: 1 },
      addGenerationPrompt: false,
    };
    const body = scoreBodyOf(request);
    expect(body).toEqual({
      model: 'm',
      messages: [{ role: 'user', content: 'hi' }],
      lora_name: 'l',
      cache_salt: 's',
      pods: ['a'],
      chat_template_kwargs: { k: 1 },
      add_generation_prompt: false,
    });
    expect(parseScoreBody(body)).toEqual(request);
  });

  it('accepts tools in the shared chat schema, defaulting their type, and names a bad one', () => {
    const parsed = parseScoreBody({
      model: 'm',
      messages: [{ role: 'user', content: 'hi' }],
      tools: [{ function: { name: 'f', parameters: { type: 'object' } } }],
    });
    expect(parsed.tools).toEqual([{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }]);
    expect(scoreBodyOf({ model: 'm', messages: [{ role: 'user', content: 'hi' }], tools: parsed.tools })).toMatchObject({
      tools: parsed.tools,
    });
    expect(error({ model: 'm', messages: [{ role: 'user', content: 'hi' }], tools: [{ function: {} }] })).toMatch(
      /tools\.0\.function\.name: /,
    );
  });

  it('accepts an empty prompt as a prompt', () => {
    expect(parseScoreBody({ model: 'm', prompt: '' }).prompt).toBe('');
  });

  it('names the field of every mistake', () => {
    expect(error({ tokens: [1] })).toMatch(/model: /);
    expect(error({ model: 'm' })).toMatch(/tokens: expected exactly one of tokens, prompt or messages/);
    expect(error({ model: 'm', tokens: [1], messages: [{ role: 'user', content: 'x' }] })).toMatch(/messages: .*got tokens and messages/);
    expect(error({ model: 'm', tokens: [1, 2.5] })).toMatch(/tokens\.1: /);
    expect(error({ model: 'm', tokens: [2 ** 32] })).toMatch(/tokens\.0: expected a token id/);
    expect(error({ model: 'm', tokens: [0, '1'] })).toMatch(/tokens\.1: expected a token id .*got "1"/);
    expect(error({ model: 'm', tokens: 'abc' })).toMatch(/tokens: expected an array of token ids/);
    expect(error({ model: 'm', messages: [] })).toMatch(/messages: expected at least one message/);
    expect(error({ model: 'm', messages: [{ role: 'user', content: 5 }] })).toMatch(/messages\.0\.content/);
    expect(error({ model: 'm', prompt: 'x', extra: 1 })).toMatch(/extra: unknown field/);
    expect(error([1, 2])).toMatch(/body: /);
  });
});
