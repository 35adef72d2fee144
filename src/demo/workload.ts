// The demo's traffic: multi-turn chat conversations that share long system prompts, the shape of
// traffic where prefix-cache-aware routing pays. Deterministic for a seed, so two routing policies
// replay exactly the same requests.

import type { ChatMessage } from '../common/chat.ts';
import { mulberry32 } from '../common/random.ts';

export interface WorkloadOptions {
  seed: number;
  /** Distinct applications, each with its own long system prompt. */
  apps: number;
  /** Conversations in flight; each belongs to one app. */
  conversations: number;
  turnsPerConversation: number;
  systemPromptWords: number;
  userMessageWords: number;
  assistantReplyWords: number;
}

export interface ChatTurn {
  conversation: number;
  turn: number;
  messages: ChatMessage[];
  maxTokens: number;
}

export const DEFAULT_WORKLOAD: WorkloadOptions = {
  seed: 7,
  apps: 4,
  // Not a multiple of the pod count, so round-robin does not pin each conversation to one pod by accident.
  conversations: 32,
  turnsPerConversation: 5,
  systemPromptWords: 900,
  userMessageWords: 60,
  assistantReplyWords: 40,
};

const WORDS = (
  'cache block token prefix router pod gateway latency model serving request queue kernel memory tensor batch ' +
  'prompt decode prefill schedule replica cluster node label service endpoint metric histogram counter event ' +
  'publisher subscriber index score weight tier policy session affinity balance load warm cold hit miss evict ' +
  'adapter weight matrix attention layer head vector embedding sequence window context budget chunk stream'
).split(' ');

function sentence(rand: () => number, words: number): string {
  const out: string[] = [];
  for (let i = 0; i < words; i++) out.push(WORDS[Math.floor(rand() * WORDS.length)]!);
  return `${out.join(' ')}.`;
}

/**
 * Requests in the order they are sent: round r carries turn r of every conversation, so a
 * conversation's next turn arrives after other conversations' turns, as in real chat traffic.
 */
export function buildWorkload(options: WorkloadOptions = DEFAULT_WORKLOAD): ChatTurn[] {
  const rand = mulberry32(options.seed);
  const systemPrompts = Array.from({ length: options.apps }, (_, app) => `You are assistant ${app}. ${sentence(rand, options.systemPromptWords)}`);
  const histories: ChatMessage[][] = Array.from({ length: options.conversations }, (_, c) => [
    { role: 'system', content: systemPrompts[c % options.apps]! },
  ]);
  const turns: ChatTurn[] = [];
  for (let turn = 0; turn < options.turnsPerConversation; turn++) {
    for (let c = 0; c < options.conversations; c++) {
      const history = histories[c]!;
      if (turn > 0) history.push({ role: 'assistant', content: sentence(rand, options.assistantReplyWords) });
      history.push({ role: 'user', content: sentence(rand, options.userMessageWords) });
      turns.push({ conversation: c, turn, messages: history.map((m) => ({ ...m })), maxTokens: 16 });
    }
  }
  return turns;
}
