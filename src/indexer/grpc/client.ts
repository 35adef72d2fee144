// The router's gRPC client for the indexer: a PrefixScorer over Indexer.Score, with a per-call
// deadline so a slow indexer degrades routing instead of stalling it. The call goes over the
// project's own HTTP/2 unary client (src/common/grpc/unary-client.ts), not grpc-js: it is on every
// request's critical path (ADR 0015).

import { createUnaryClient } from '../../common/grpc/unary-client.ts';
import type { PrefixScorer, ScoreRequest } from '../types.ts';
import { IndexerService, type ScoreRequestMessage, type ScoreResponseMessage } from './proto.ts';

export interface IndexerClientOptions {
  /** Per-call deadline; default 200 ms. */
  deadlineMs?: number;
}

export interface IndexerClient extends PrefixScorer {
  close(): void;
}

function toProtoRequest(r: ScoreRequest): Partial<ScoreRequestMessage> {
  const m: Partial<ScoreRequestMessage> = { model: r.model };
  if (r.tokens) m.tokens = r.tokens;
  if (r.prompt !== undefined) m.prompt = r.prompt;
  if (r.messages) {
    m.messages = r.messages.map(({ role, content, ...fields }) => {
      const fields_json = Object.keys(fields).length > 0 ? JSON.stringify(fields) : '';
      return Array.isArray(content)
        ? { role, content: '', parts: content.map((p) => ({ type: p.type, text: p.text ?? '' })), fields_json }
        : { role, content: content ?? '', parts: [], fields_json };
    });
  }
  if (r.loraName) m.lora_name = r.loraName;
  if (r.cacheSalt) m.cache_salt = r.cacheSalt;
  if (r.pods) m.pods = r.pods;
  if (r.chatTemplateKwargs) m.chat_template_kwargs_json = JSON.stringify(r.chatTemplateKwargs);
  if (r.addGenerationPrompt !== undefined) m.add_generation_prompt = r.addGenerationPrompt;
  if (r.tools) m.tools_json = JSON.stringify(r.tools);
  return m;
}

/** Indexer.Score as the unary client calls it, with proto-loader's codec for the messages. */
const SCORE_METHOD = (() => {
  const def = IndexerService.service['Score']!;
  return {
    path: def.path,
    encode: (m: Partial<ScoreRequestMessage>) => def.requestSerialize(m),
    decode: (b: Buffer) => def.responseDeserialize(b) as ScoreResponseMessage,
  };
})();

/** A PrefixScorer backed by the indexer's gRPC API at `address` (host:port). */
export function createIndexerClient(address: string, options: IndexerClientOptions = {}): IndexerClient {
  const client = createUnaryClient(address, SCORE_METHOD);
  const deadlineMs = options.deadlineMs ?? 200;
  return {
    score: async (request: ScoreRequest) => {
      try {
        const response = await client.call(toProtoRequest(request), deadlineMs);
        return { scores: { ...(response.scores ?? {}) }, totalBlocks: response.total_blocks ?? 0 };
      } catch (err) {
        throw new Error(`indexer Score at ${address} failed: ${(err as Error).message}`);
      }
    },
    close: () => client.close(),
  };
}
