// The RAG workload: each request is a system prompt, k documents retrieved from a pool with a Zipf
// popularity, and a question. Documents are placed most popular first, as a retriever that ranks by
// popularity would, so requests that retrieved the same top documents share a prefix.

import { mulberry32 } from '../../common/random.ts';
import { checkInt, deriveSeed, seededTokens } from './tokens.ts';
import type { WorkloadRequest } from './types.ts';

export interface RagOptions {
  seed: number;
  model: string;
  /** Documents in the pool; document 0 is the most popular. */
  documents: number;
  documentLen: number;
  /** Documents per request (k), drawn without replacement. */
  docsPerRequest: number;
  /** Zipf exponent s: document i is drawn with weight 1 / (i + 1)^s. */
  zipfExponent: number;
  systemPromptLen: number;
  questionLen: number;
  outputLen: number;
  requests: number;
}

export const RAG_DEFAULT: Omit<RagOptions, 'seed' | 'model'> = {
  documents: 200,
  documentLen: 800,
  docsPerRequest: 4,
  zipfExponent: 1.1,
  systemPromptLen: 500,
  questionLen: 100,
  outputLen: 200,
  requests: 1000,
};

export const RAG_QUICK: Omit<RagOptions, 'seed' | 'model'> = {
  documents: 60,
  documentLen: 400,
  docsPerRequest: 3,
  zipfExponent: 1.1,
  systemPromptLen: 300,
  questionLen: 60,
  outputLen: 16,
  requests: 200,
};

const SYSTEM = 21;
const DOCUMENT = 22;
const QUESTION = 23;
const DRAW = 24;

/** Zipf weights of ranks 0..n-1: 1 / (i + 1)^s. */
export function zipfWeights(n: number, s: number): Float64Array {
  if (!(s >= 0) || !Number.isFinite(s)) throw new Error(`zipfExponent: expected a finite number >= 0, got ${s}`);
  const w = new Float64Array(n);
  for (let i = 0; i < n; i++) w[i] = 1 / Math.pow(i + 1, s);
  return w;
}

/**
 * k distinct ranks drawn by weight without replacement (each draw among the ranks not yet drawn),
 * returned in ascending rank order. A linear scan per draw: exact, and cheap for document pools.
 */
export function drawWithoutReplacement(weights: Float64Array, k: number, rand: () => number): number[] {
  const taken = new Uint8Array(weights.length);
  let remaining = weights.reduce((a, b) => a + b, 0);
  const out: number[] = [];
  for (let n = 0; n < k; n++) {
    let x = rand() * remaining;
    let pick = -1;
    for (let i = 0; i < weights.length; i++) {
      if (taken[i]) continue;
      pick = i;
      x -= weights[i]!;
      if (x < 0) break;
    }
    taken[pick] = 1;
    remaining -= weights[pick]!;
    out.push(pick);
  }
  return out.sort((a, b) => a - b);
}

/** Requests in arrival order; documents are generated once and shared by every request that retrieves them. */
export function ragWorkload(options: RagOptions): WorkloadRequest[] {
  checkInt('documents', options.documents, 1);
  checkInt('documentLen', options.documentLen, 1);
  checkInt('docsPerRequest', options.docsPerRequest, 1, options.documents);
  checkInt('systemPromptLen', options.systemPromptLen, 0);
  checkInt('questionLen', options.questionLen, 1);
  checkInt('outputLen', options.outputLen, 1);
  checkInt('requests', options.requests, 1);
  const { seed } = options;
  const system = seededTokens(options.systemPromptLen, seed, SYSTEM);
  const docs = new Map<number, number[]>();
  const doc = (d: number): number[] => {
    let tokens = docs.get(d);
    if (!tokens) docs.set(d, (tokens = seededTokens(options.documentLen, seed, DOCUMENT, d)));
    return tokens;
  };
  const rand = mulberry32(deriveSeed(seed, DRAW));
  const weights = zipfWeights(options.documents, options.zipfExponent);
  const out: WorkloadRequest[] = [];
  for (let r = 0; r < options.requests; r++) {
    const ranks = drawWithoutReplacement(weights, options.docsPerRequest, rand);
    const tokens = [...system];
    for (const d of ranks) tokens.push(...doc(d));
    tokens.push(...seededTokens(options.questionLen, seed, QUESTION, r));
    out.push({ tMs: 0, model: options.model, tokens, maxTokens: options.outputLen, session: `q${r}`, group: `d${ranks.join('+')}` });
  }
  return out;
}
