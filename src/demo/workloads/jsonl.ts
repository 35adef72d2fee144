// A workload from a JSONL file written by hand or exported from logs: one request per line,
// `{"t_ms": 0, "model": "m", "prompt": "..."}` or `{"t_ms": 5, "model": "m", "messages": [...],
// "max_tokens": 64, "session": "u1"}`, validated line by line with errors naming the line and field.

import { z } from 'zod';
import { ChatMessageSchema } from '../../common/chat.ts';
import { parseLine, readJsonLines, WorkloadFileError } from './lines.ts';
import { checkInt } from './tokens.ts';
import type { WorkloadRequest } from './types.ts';

const JsonlRequestSchema = z
  .strictObject(
    {
      t_ms: z.number({ message: 'expected the arrival offset in milliseconds' }).finite().nonnegative('must be >= 0').default(0),
      model: z.string().min(1, 'expected a non-empty model name').optional(),
      prompt: z
        .union(
          [
            z.string().min(1, 'must not be empty'),
            z
              .array(z.number().int('token ids are integers').nonnegative('token ids are >= 0'))
              .min(1, 'a token-id prompt needs at least one token'),
          ],
          {
            message: 'expected a string or an array of token ids',
          },
        )
        .optional(),
      messages: z.array(ChatMessageSchema).min(1, 'must not be empty').optional(),
      max_tokens: z.number().int().min(1, 'must be at least 1').optional(),
      session: z.string().min(1).optional(),
      group: z.string().min(1).optional(),
    },
    { error: (issue) => (issue.code === 'invalid_type' ? 'expected one JSON object per line' : undefined) },
  )
  .superRefine((line, ctx) => {
    if ((line.prompt === undefined) === (line.messages === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [line.prompt === undefined ? 'prompt' : 'messages'],
        message: 'expected exactly one of prompt or messages',
      });
    }
  });

export interface JsonlWorkloadOptions {
  /** Model for lines that name none. */
  model?: string;
  /** Only the first `limit` requests. */
  limit?: number;
  /** max_tokens for lines that give none. */
  defaultMaxTokens?: number;
  /** Caps every line's max_tokens. */
  maxOutputTokens?: number;
}

/** Reads the file as a stream; lines must come in arrival order (t_ms never decreases). */
export async function loadJsonlWorkload(path: string, options: JsonlWorkloadOptions = {}): Promise<WorkloadRequest[]> {
  if (options.limit !== undefined) checkInt('limit', options.limit, 1);
  if (options.maxOutputTokens !== undefined) checkInt('maxOutputTokens', options.maxOutputTokens, 1);
  const defaultMaxTokens = options.defaultMaxTokens ?? 64;
  checkInt('defaultMaxTokens', defaultMaxTokens, 1);
  const out: WorkloadRequest[] = [];
  let lastT = 0;
  for await (const item of readJsonLines(path)) {
    if (options.limit !== undefined && out.length >= options.limit) break;
    const line = parseLine(JsonlRequestSchema, path, item);
    const model = line.model ?? options.model;
    if (model === undefined) throw new WorkloadFileError(`${path}:${item.line}: model: required (no default model was given)`);
    if (line.t_ms < lastT) {
      throw new WorkloadFileError(
        `${path}:${item.line}: t_ms: ${line.t_ms} is earlier than the previous request's ${lastT}; lines must be in arrival order`,
      );
    }
    lastT = line.t_ms;
    const maxTokens = Math.min(line.max_tokens ?? defaultMaxTokens, options.maxOutputTokens ?? Infinity);
    const request: WorkloadRequest = { tMs: line.t_ms, model, maxTokens };
    if (typeof line.prompt === 'string') request.prompt = line.prompt;
    else if (line.prompt) request.tokens = line.prompt;
    if (line.messages) request.messages = line.messages;
    if (line.session !== undefined) request.session = line.session;
    if (line.group !== undefined) request.group = line.group;
    out.push(request);
  }
  if (out.length === 0) throw new WorkloadFileError(`${path}: no requests (the file is empty)`);
  return out;
}
