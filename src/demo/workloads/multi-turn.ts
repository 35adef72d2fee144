// The multi-turn workload: chat conversations that grow turn by turn. Each turn's prompt is the
// previous turn's prompt plus a reply and a new question, so a conversation's next request extends a
// prefix some pod computed one turn earlier; conversations share a few system prompts.

import { mulberry32 } from '../../common/random.ts';
import { checkInt, deriveSeed, seededPermutation, seededTokens } from './tokens.ts';
import type { WorkloadRequest } from './types.ts';

export interface MultiTurnOptions {
  seed: number;
  model: string;
  conversations: number;
  turns: number;
  /** Distinct system prompts; conversation c uses system prompt c mod systemPrompts. */
  systemPrompts: number;
  systemPromptLen: number;
  /** Tokens of each user question. */
  questionLen: number;
  /**
   * Tokens of the assistant reply carried into the next turn. The reply is synthetic (a workload
   * cannot know what the pod will generate), so its blocks are new to every cache.
   */
  replyLen: number;
  outputLen: number;
  /** When set, only the first `requests` requests. */
  requests?: number;
}

export const MULTI_TURN_DEFAULT: Omit<MultiTurnOptions, 'seed' | 'model'> = {
  conversations: 64,
  turns: 6,
  systemPrompts: 8,
  systemPromptLen: 2000,
  questionLen: 200,
  replyLen: 300,
  outputLen: 300,
};

export const MULTI_TURN_QUICK: Omit<MultiTurnOptions, 'seed' | 'model'> = {
  conversations: 24,
  turns: 5,
  systemPrompts: 4,
  systemPromptLen: 1000,
  questionLen: 100,
  replyLen: 100,
  outputLen: 16,
};

const SYSTEM = 11;
const QUESTION = 12;
const REPLY = 13;
const ORDER = 14;

function validate(o: MultiTurnOptions): void {
  checkInt('conversations', o.conversations, 1);
  checkInt('turns', o.turns, 1);
  checkInt('systemPrompts', o.systemPrompts, 1);
  checkInt('systemPromptLen', o.systemPromptLen, 0);
  checkInt('questionLen', o.questionLen, 1);
  checkInt('replyLen', o.replyLen, 0);
  checkInt('outputLen', o.outputLen, 1);
  if (o.requests !== undefined) checkInt('requests', o.requests, 1);
}

/**
 * Requests in arrival order: round t carries turn t of every conversation, in a seeded order
 * reshuffled each round, so a conversation's next turn comes after the other conversations' turns.
 */
export function multiTurnWorkload(options: MultiTurnOptions): WorkloadRequest[] {
  validate(options);
  const { seed } = options;
  const systems = Array.from({ length: Math.min(options.systemPrompts, options.conversations) }, (_, s) =>
    seededTokens(options.systemPromptLen, seed, SYSTEM, s),
  );
  const histories: number[][] = Array.from({ length: options.conversations }, (_, c) => [...systems[c % systems.length]!]);
  const total = Math.min(options.requests ?? Infinity, options.conversations * options.turns);
  const out: WorkloadRequest[] = [];
  for (let turn = 0; turn < options.turns && out.length < total; turn++) {
    const order = seededPermutation(options.conversations, mulberry32(deriveSeed(seed, ORDER, turn)));
    for (const c of order) {
      if (out.length >= total) break;
      const history = histories[c]!;
      if (turn > 0) history.push(...seededTokens(options.replyLen, seed, REPLY, c, turn - 1));
      history.push(...seededTokens(options.questionLen, seed, QUESTION, c, turn));
      out.push({
        tMs: 0,
        model: options.model,
        tokens: history.slice(),
        maxTokens: options.outputLen,
        session: `c${c}`,
        group: `s${c % systems.length}`,
      });
    }
  }
  return out;
}
