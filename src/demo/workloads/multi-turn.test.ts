import { describe, expect, it } from '@jest/globals';
import { computeOracle } from '../oracle.ts';
import { multiTurnWorkload, type MultiTurnOptions } from './multi-turn.ts';

const small: MultiTurnOptions = {
  seed: 3,
  model: 'm',
  conversations: 4,
  turns: 3,
  systemPrompts: 2,
  systemPromptLen: 32,
  questionLen: 8,
  replyLen: 16,
  outputLen: 5,
};

describe('multiTurnWorkload', () => {
  it('replays exactly for a seed and changes with the seed', () => {
    expect(multiTurnWorkload(small)).toEqual(multiTurnWorkload(small));
    expect(multiTurnWorkload({ ...small, seed: 4 }).map((r) => r.tokens)).not.toEqual(multiTurnWorkload(small).map((r) => r.tokens));
  });

  it("extends each conversation's previous prompt by one reply and one question", () => {
    const requests = multiTurnWorkload(small);
    expect(requests).toHaveLength(12);
    for (let c = 0; c < 4; c++) {
      const turns = requests.filter((r) => r.session === `c${c}`);
      expect(turns.map((t) => t.tokens!.length)).toEqual([40, 64, 88]);
      for (let t = 1; t < turns.length; t++) expect(turns[t]!.tokens!.slice(0, turns[t - 1]!.tokens!.length)).toEqual(turns[t - 1]!.tokens);
    }
  });

  it('sends turn t of every conversation before any turn t + 1', () => {
    const requests = multiTurnWorkload(small);
    const lengths = requests.map((r) => r.tokens!.length);
    expect(lengths).toEqual([...lengths].sort((a, b) => a - b));
    expect(new Set(requests.slice(0, 4).map((r) => r.session)).size).toBe(4);
  });

  it('shares system prompts between conversations of the same group', () => {
    const first = multiTurnWorkload(small).slice(0, 4);
    const bySystem = new Map<string, string>();
    for (const r of first) {
      const sys = r.tokens!.slice(0, 32).join(',');
      expect(bySystem.get(r.group!) ?? sys).toBe(sys);
      bySystem.set(r.group!, sys);
    }
    expect(bySystem.size).toBe(2);
    expect(new Set(bySystem.values()).size).toBe(2);
  });

  it('has the hand-computed bound on a small case', () => {
    const requests = multiTurnWorkload({ ...small, conversations: 2, systemPrompts: 1, turns: 2 });
    // Turn 0: the first conversation misses, the second hits the 2 whole system blocks (32 tokens).
    // Turn 1 (64 tokens): each hits its own turn-0 prompt's 2 whole blocks of 40 tokens = 32 tokens.
    expect(
      computeOracle(
        requests.map((r) => r.tokens!),
        16,
      ).hitTokens,
    ).toEqual([0, 32, 32, 32]);
  });

  it('stops at `requests` and rejects invalid parameters', () => {
    expect(multiTurnWorkload({ ...small, requests: 5 })).toEqual(multiTurnWorkload(small).slice(0, 5));
    expect(() => multiTurnWorkload({ ...small, turns: 0 })).toThrow('turns: expected an integer >= 1, got 0');
  });
});
