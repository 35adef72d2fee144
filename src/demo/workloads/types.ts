// What every workload produces: the requests a benchmark sends, in arrival order, with exact token
// content where the workload controls it, so the bound and the funnel can be computed from them.

import type { ChatMessage } from '../../common/chat.ts';

/**
 * One request of a workload. Exactly one of `tokens` (sent as a token-id prompt to
 * /v1/completions), `prompt` (text, /v1/completions) or `messages` (/v1/chat/completions) is set.
 * Token arrays may be shared between requests that send the same prompt: treat them as read-only.
 */
export interface WorkloadRequest {
  /** Arrival offset from the start of the run; 0 for workloads without timing (closed loop). */
  tMs: number;
  model: string;
  prompt?: string;
  tokens?: readonly number[];
  messages?: ChatMessage[];
  maxTokens: number;
  /** The user or conversation the request belongs to. */
  session?: string;
  /** The shared-prefix group (system prompt, document set) the request belongs to. */
  group?: string;
}

export interface Workload {
  /** What ran, for reports: the spec and its parameters, e.g. `shared-prefix(groups=12,...)`. */
  name: string;
  requests: WorkloadRequest[];
}
