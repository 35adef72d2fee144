// The contracts between the indexer's parts: the event sources and the sink that applies their batches
// in order (index/ implements it), and the scoring request the router and HTTP API send. The decoded
// KV events themselves are vLLM's protocol and live in src/vllm/events/types.ts.

import type { EventBatch } from '../vllm/events/types.ts';

/** One engine that publishes KV events: a pod, and a data-parallel rank within it. */
export interface EventSource {
  podId: string;
  model: string;
  dpRank: number;
}

/** A stable string for a source: `podId` for rank 0, `podId|dp<rank>` otherwise. */
export function sourceKey(source: Pick<EventSource, 'podId' | 'dpRank'>): string {
  return source.dpRank === 0 ? source.podId : `${source.podId}|dp${source.dpRank}`;
}

/** The pod id a source key belongs to (scores are reported per pod). */
export function podOfSourceKey(key: string): string {
  const bar = key.indexOf('|dp');
  return bar < 0 ? key : key.slice(0, bar);
}

/** Applies ordered event batches of one source; the index implements it. */
export interface KvEventSink {
  apply(source: EventSource, batch: EventBatch): void;
  /** Forgets everything known about a source (unrecoverable gap, pod gone). */
  resetSource(source: EventSource): void;
  /**
   * Drops a source for good (it went silent and is taken as gone): its entries and any per-source
   * bookkeeping, such as metric label series. If it publishes again it starts afresh.
   */
  forgetSource(source: EventSource): void;
}

import type { ChatMessage, ChatTool } from '../common/chat.ts';

/** Chat messages and tools have one schema, shared with the simulator (common/chat.ts). */
export type { ChatMessage, ChatTool };

/** A scoring request: exactly one of tokens, prompt or messages. */
export interface ScoreRequest {
  model: string;
  tokens?: number[];
  prompt?: string;
  messages?: ChatMessage[];
  loraName?: string;
  cacheSalt?: string;
  /** Restricts scoring to these pods when given. */
  pods?: string[];
  /** Extra chat-template variables, as vLLM's chat_template_kwargs (e.g. enable_thinking); messages only. */
  chatTemplateKwargs?: Record<string, unknown>;
  /** As vLLM's add_generation_prompt (default true); messages only. */
  addGenerationPrompt?: boolean;
  /** Tools the chat template renders into the prompt, as vLLM's `tools`; messages only. */
  tools?: ChatTool[];
}

export interface ScoreResult {
  /** Pod id -> matched consecutive blocks from block 0, each weighted by its tier. */
  scores: Record<string, number>;
  /**
   * Full blocks in the request's tokens (the most any pod can match), so a caller can score
   * matched / total. Absent from scorers that do not know it.
   */
  totalBlocks?: number;
}

/** What the router needs from the indexer, in-process or over gRPC. */
export interface PrefixScorer {
  score(request: ScoreRequest): Promise<ScoreResult>;
}
