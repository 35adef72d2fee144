// Messages between TokenizerPool and its worker threads.

import type { TokenizeInput, TokenizeOutput } from './tokenizers.ts';

export interface WorkerSetup {
  sources: Record<string, string>;
  /** See TokenizerSetOptions.defaultSource. */
  defaultSource?: string | null;
  cacheMaxBytes?: number;
  harmonyStartDate?: string;
}

export interface WorkerRequest {
  id: number;
  model: string;
  input: TokenizeInput;
}

export type WorkerReply =
  | { type: 'ready'; models: string[] }
  | { type: 'failed'; message: string }
  | { type: 'result'; id: number; out: TokenizeOutput }
  | { type: 'error'; id: number; kind: 'unknown-model' | 'input' | 'internal'; message: string };
