// OpenAI chat request pieces that both the indexer's score request and the simulator's chat endpoint
// accept: messages and tools, as zod schemas (the one source of their types), and the tool dicts a
// chat template receives, built the way vLLM serializes its tool parameters.

import { z } from 'zod';

const ChatContentPartSchema = z.looseObject({ type: z.string(), text: z.string().optional() });

export const ChatMessageSchema = z.looseObject({
  role: z.string().min(1, 'expected a non-empty role'),
  content: z
    .union([z.string(), z.array(ChatContentPartSchema), z.null()], { message: 'expected a string, an array of content parts or null' })
    .optional(),
});
export type ChatMessage = z.infer<typeof ChatMessageSchema>;

const FunctionDefinitionSchema = z.looseObject({
  name: z.string().min(1, 'expected the function name'),
  description: z.string().nullish(),
  parameters: z.record(z.string(), z.unknown()).nullish(),
  strict: z.boolean().nullish(),
  defer_loading: z.boolean().nullish(),
});

export const ChatToolSchema = z.looseObject({
  type: z.literal('function', { message: 'expected "function" (the only tool type chat completions take)' }).default('function'),
  function: FunctionDefinitionSchema,
  defer_loading: z.boolean().nullish(),
});
export type ChatTool = z.infer<typeof ChatToolSchema>;

/** A tool as a chat template sees it. */
export type TemplateTool = Record<string, unknown>;

/**
 * The tool dicts vLLM hands to the chat template (its ChatCompletionToolsParam.model_dump()): only
 * the known fields, in their declared order, description and parameters always present (null when
 * absent), strict and defer_loading only when set, and a tool-level defer_loading copied into the
 * function when the function has none. Templates print these with tojson, so the order and the
 * nulls change the prompt's tokens.
 */
export function templateTools(tools: readonly ChatTool[]): TemplateTool[] {
  return tools.map((tool) => {
    const fn = tool.function;
    const deferLoading = fn.defer_loading ?? tool.defer_loading ?? null;
    const dumped: Record<string, unknown> = { name: fn.name, description: fn.description ?? null, parameters: fn.parameters ?? null };
    if (fn.strict !== undefined && fn.strict !== null) dumped.strict = fn.strict;
    if (deferLoading !== null) dumped.defer_loading = deferLoading;
    const out: TemplateTool = { type: tool.type, function: dumped };
    if (tool.defer_loading !== undefined && tool.defer_loading !== null) out.defer_loading = tool.defer_loading;
    return out;
  });
}

/** Thrown when a message cannot become a template turn (vLLM answers these with a 400). */
export class ChatMessageError extends Error {}

/** vLLM's tool-call arguments for templates: an object, parsed from a JSON string; anything else becomes {}. */
function argumentsObject(value: unknown): Record<string, unknown> {
  let parsed: unknown = value;
  if (typeof value === 'string') {
    if (value === '') return {};
    try {
      parsed = JSON.parse(value);
    } catch {
      return {};
    }
  }
  return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
}

function templateToolCalls(calls: unknown[], index: number): unknown[] {
  return calls.map((call, j) => {
    const fn = typeof call === 'object' && call !== null ? (call as Record<string, unknown>).function : undefined;
    const type = (call as Record<string, unknown> | null)?.type ?? 'function';
    if (typeof call !== 'object' || call === null || type !== 'function' || typeof fn !== 'object' || fn === null) {
      throw new ChatMessageError(`messages.${index}.tool_calls.${j}: expected {"type": "function", "function": {...}}`);
    }
    return { ...call, function: { ...fn, arguments: argumentsObject((fn as Record<string, unknown>).arguments) } };
  });
}

/**
 * One message as vLLM hands it to the chat template (its ConversationMessage): role and flattened
 * content, then only the fields vLLM carries over: an assistant's tool_calls (arguments parsed into
 * objects, an empty list dropped) and `reasoning` (also as reasoning_content), a tool turn's
 * tool_call_id, a string name or task, a developer turn's tools. Anything else the client sent is
 * not seen by the template, so it must not change the prompt here either.
 */
export function templateMessage(message: ChatMessage, content: string, index: number): Record<string, unknown> {
  const out: Record<string, unknown> = { role: message.role, content };
  if (message.role === 'assistant') {
    const calls = message.tool_calls;
    if (calls !== undefined && calls !== null && !Array.isArray(calls))
      throw new ChatMessageError(`messages.${index}.tool_calls: expected an array of tool calls`);
    if (Array.isArray(calls) && calls.length > 0) out.tool_calls = templateToolCalls(calls, index);
    if (message.reasoning !== undefined && message.reasoning !== null) {
      out.reasoning = message.reasoning;
      out.reasoning_content = message.reasoning;
    }
  } else if (message.role === 'tool' && 'tool_call_id' in message) {
    out.tool_call_id = message.tool_call_id;
  }
  if (typeof message.name === 'string') out.name = message.name;
  if (typeof message.task === 'string') out.task = message.task;
  if (message.role === 'developer') out.tools = message.tools ?? null;
  return out;
}
