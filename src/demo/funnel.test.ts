import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { bestResidentTokens, funnelEntry, summarizeFunnel, type FunnelObservation } from './funnel.ts';
import { PrefixOracle } from './oracle.ts';

const obs = (promptTokens: number, oracleHitTokens: number, bestResidentTokens: number, chosenCachedTokens: number): FunnelObservation => ({
  promptTokens,
  oracleHitTokens,
  bestResidentTokens,
  chosenCachedTokens,
});

describe('the routing funnel', () => {
  it('splits the bound into hit, routing loss and eviction loss on hand-made requests', () => {
    // 100 computed before, some pod holds 80, the chosen pod hit 48.
    expect(funnelEntry(obs(120, 100, 80, 48))).toMatchObject({
      hitTokens: 48,
      routingLossTokens: 32,
      evictionLossTokens: 20,
      beyondBoundTokens: 0,
    });
    // The chosen pod held the most: no routing loss.
    expect(funnelEntry(obs(120, 100, 64, 64))).toMatchObject({ hitTokens: 64, routingLossTokens: 0, evictionLossTokens: 36 });
    // An indexer a few events behind reports less than the chosen pod then hit: the pod's number wins.
    expect(funnelEntry(obs(120, 64, 16, 48))).toMatchObject({ hitTokens: 48, routingLossTokens: 0, evictionLossTokens: 16 });
    // A pod already holding blocks of a request sent later (out-of-order completion): hit capped at the bound.
    expect(funnelEntry(obs(120, 32, 0, 48))).toMatchObject({
      hitTokens: 32,
      routingLossTokens: 0,
      evictionLossTokens: 0,
      beyondBoundTokens: 16,
    });
  });

  it('aggregates into fractions of all prompt tokens', () => {
    const totals = summarizeFunnel([obs(100, 80, 80, 80), obs(100, 80, 64, 0), obs(200, 0, 0, 0)]);
    expect(totals).toMatchObject({
      requests: 3,
      promptTokens: 400,
      oracleHitTokens: 160,
      hitTokens: 80,
      routingLossTokens: 64,
      evictionLossTokens: 16,
    });
    expect(totals.oracle).toBeCloseTo(0.4, 12);
    expect(totals.hit).toBeCloseTo(0.2, 12);
    expect(totals.routingLoss).toBeCloseTo(0.16, 12);
    expect(totals.evictionLoss).toBeCloseTo(0.04, 12);
  });

  it('keeps oracle = hit + routing loss + eviction loss exactly for any observations', () => {
    const observation = fc.record({
      promptTokens: fc.nat(10_000),
      oracleHitTokens: fc.nat(10_000),
      bestResidentTokens: fc.nat(10_000),
      chosenCachedTokens: fc.nat(10_000),
    });
    fc.assert(
      fc.property(fc.array(observation, { maxLength: 50 }), (observations) => {
        for (const o of observations) {
          const e = funnelEntry(o);
          expect(e.hitTokens + e.routingLossTokens + e.evictionLossTokens).toBe(o.oracleHitTokens);
          expect(Math.min(e.hitTokens, e.routingLossTokens, e.evictionLossTokens, e.beyondBoundTokens)).toBeGreaterThanOrEqual(0);
          expect(e.hitTokens + e.beyondBoundTokens).toBe(o.chosenCachedTokens);
        }
        const t = summarizeFunnel(observations);
        expect(t.hitTokens + t.routingLossTokens + t.evictionLossTokens).toBe(t.oracleHitTokens);
        expect(t.hit + t.routingLoss + t.evictionLoss).toBeCloseTo(t.oracle, 12);
      }),
    );
  });

  it('shows no eviction loss when every pod has an unlimited cache, whatever the routing', () => {
    // Prompts from a tiny alphabet so prefixes collide often; pods are unlimited caches; routing is arbitrary.
    const prompt = fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 24 });
    fc.assert(
      fc.property(fc.array(fc.tuple(prompt, fc.nat(3)), { maxLength: 40 }), (requests) => {
        const oracle = new PrefixOracle(2);
        const pods = [0, 1, 2, 3].map(() => new PrefixOracle(2));
        const observations = requests.map(([tokens, pick]) => {
          const best = Math.max(...pods.map((p) => p.match(tokens)));
          const chosen = pods[pick]!.observe(tokens);
          return obs(tokens.length, oracle.observe(tokens), best, chosen);
        });
        const t = summarizeFunnel(observations);
        expect(t.evictionLossTokens).toBe(0);
        expect(t.beyondBoundTokens).toBe(0);
        expect(t.hitTokens + t.routingLossTokens).toBe(t.oracleHitTokens);
      }),
    );
  });

  it('turns the indexer scores into the best resident tokens, capped before the last token', () => {
    expect(bestResidentTokens({ a: 3, b: 5 }, 16, 200)).toBe(80);
    expect(bestResidentTokens({ a: 3, b: 5 }, 16, 70)).toBe(64);
    expect(bestResidentTokens({}, 16, 70)).toBe(0);
    expect(() => bestResidentTokens({ a: -1 }, 16, 70)).toThrow('scores.a: expected a non-negative block count, got -1');
  });

  it('rejects token counts that are not non-negative integers, naming them', () => {
    expect(() => funnelEntry(obs(10, -1, 0, 0))).toThrow('oracleHitTokens: expected a non-negative integer token count, got -1');
    expect(() => funnelEntry(obs(10, 0, 0, 1.5))).toThrow('chosenCachedTokens');
  });
});
