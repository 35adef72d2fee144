import { describe, expect, it } from '@jest/globals';
import { ChatMessageError, ChatToolSchema, templateMessage, templateTools } from './chat.ts';

describe('templateTools', () => {
  it('dumps tools as vLLM does: known fields in order, absent description and parameters as null', () => {
    const tools = [ChatToolSchema.parse({ function: { name: 'f', extra: 1 }, other: 2 })];
    expect(JSON.stringify(templateTools(tools))).toBe('[{"type":"function","function":{"name":"f","description":null,"parameters":null}}]');
  });

  it("copies a tool's defer_loading into its function and keeps strict only when set", () => {
    const tools = [ChatToolSchema.parse({ type: 'function', function: { name: 'f', strict: false }, defer_loading: true })];
    expect(templateTools(tools)).toEqual([
      {
        type: 'function',
        function: { name: 'f', description: null, parameters: null, strict: false, defer_loading: true },
        defer_loading: true,
      },
    ]);
  });

  it('rejects a tool type other than function, naming the field', () => {
    const result = ChatToolSchema.safeParse({ type: 'retrieval', function: { name: 'f' } });
    expect(result.success).toBe(false);
    expect(result.error!.issues[0]!.path).toEqual(['type']);
  });
});

describe('templateMessage', () => {
  const call = (args: unknown) => ({ id: 'c', type: 'function', function: { name: 'f', arguments: args } });

  it('parses tool-call arguments into objects, and turns empty, broken or non-object ones into {}', () => {
    const message = {
      role: 'assistant',
      content: null,
      tool_calls: [call('{"a":1}'), call(''), call('{oops'), call('[1]'), call({ b: 2 })],
    };
    const out = templateMessage(message, '', 0);
    expect((out.tool_calls as Array<{ function: { arguments: unknown } }>).map((c) => c.function.arguments)).toEqual([
      { a: 1 },
      {},
      {},
      {},
      { b: 2 },
    ]);
    expect(message.tool_calls[0]!.function.arguments).toBe('{"a":1}');
  });

  it('keeps only the fields vLLM passes to the template', () => {
    expect(templateMessage({ role: 'assistant', content: 'x', reasoning_content: 'r', tool_calls: [], extra: 1 }, 'x', 0)).toEqual({
      role: 'assistant',
      content: 'x',
    });
    expect(templateMessage({ role: 'assistant', content: 'x', reasoning: 'r' }, 'x', 0)).toEqual({
      role: 'assistant',
      content: 'x',
      reasoning: 'r',
      reasoning_content: 'r',
    });
    expect(templateMessage({ role: 'tool', content: 'x', tool_call_id: 'c', name: 'f' }, 'x', 0)).toEqual({
      role: 'tool',
      content: 'x',
      tool_call_id: 'c',
      name: 'f',
    });
    expect(templateMessage({ role: 'user', content: 'x', tool_call_id: 'c' }, 'x', 0)).toEqual({ role: 'user', content: 'x' });
  });

  it('rejects tool calls that are not function calls, naming the message', () => {
    expect(() => templateMessage({ role: 'assistant', content: '', tool_calls: [{ type: 'code' }] }, '', 3)).toThrow(ChatMessageError);
    expect(() => templateMessage({ role: 'assistant', content: '', tool_calls: 'f' }, '', 3)).toThrow(/messages\.3\.tool_calls/);
  });
});
