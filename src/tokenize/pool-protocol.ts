// Messages between TokenizerPool and its worker threads.

import type { CacheBytes, TokenizeInput, TokenizeOutput } from './tokenizers.ts';

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
  /** With the worker's cache sizes after the job: they change only when a job runs. */
  | { type: 'result'; id: number; out: TokenizeOutput; cacheBytes: CacheBytes }
  | { type: 'error'; id: number; kind: 'unknown-model' | 'input' | 'internal'; message: string };
