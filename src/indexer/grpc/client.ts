// The router's gRPC client for the indexer: a PrefixScorer over Indexer.Score, with a per-call
// deadline so a slow indexer degrades routing instead of stalling it.

import * as grpc from '@grpc/grpc-js';
import type { PrefixScorer, ScoreRequest, ScoreResult } from '../types.ts';
import { IndexerService, type ScoreRequestMessage, type ScoreResponseMessage } from './proto.ts';

export interface IndexerClientOptions {
  /** Per-call deadline; default 200 ms. */
  deadlineMs?: number;
}

export interface IndexerClient extends PrefixScorer {
  close(): void;
}

type ScoreMethod = (
  request: Partial<ScoreRequestMessage>,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, response?: ScoreResponseMessage) => void,
) => void;

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

/** A PrefixScorer backed by the indexer's gRPC API at `address` (host:port). */
export function createIndexerClient(address: string, options: IndexerClientOptions = {}): IndexerClient {
  const client = new IndexerService(address, grpc.credentials.createInsecure());
  const score = (client as unknown as { Score: ScoreMethod }).Score.bind(client);
  const deadlineMs = options.deadlineMs ?? 200;
  return {
    score: (request: ScoreRequest) =>
      new Promise<ScoreResult>((resolve, reject) => {
        score(toProtoRequest(request), { deadline: Date.now() + deadlineMs }, (err, response) => {
          if (err) reject(new Error(`indexer Score at ${address} failed: ${grpc.status[err.code] ?? err.code}: ${err.details}`));
          else resolve({ scores: { ...(response?.scores ?? {}) }, totalBlocks: response?.total_blocks ?? 0 });
        });
      }),
    close: () => client.close(),
  };
}
