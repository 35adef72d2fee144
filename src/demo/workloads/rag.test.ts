import { describe, expect, it } from '@jest/globals';
import { mulberry32 } from '../../common/random.ts';
import { drawWithoutReplacement, ragWorkload, zipfWeights, type RagOptions } from './rag.ts';

const small: RagOptions = {
  seed: 5,
  model: 'm',
  documents: 20,
  documentLen: 24,
  docsPerRequest: 3,
  zipfExponent: 1.2,
  systemPromptLen: 16,
  questionLen: 8,
  outputLen: 4,
  requests: 300,
};

function docIds(group: string): number[] {
  return group.slice(1).split('+').map(Number);
}

describe('ragWorkload', () => {
  it('replays exactly for a seed and changes with the seed', () => {
    expect(ragWorkload(small)).toEqual(ragWorkload(small));
    expect(ragWorkload({ ...small, seed: 6 }).map((r) => r.group)).not.toEqual(ragWorkload(small).map((r) => r.group));
  });

  it('builds system + k distinct documents, most popular first, + question, with exact lengths', () => {
    const requests = ragWorkload(small);
    expect(requests).toHaveLength(300);
    const docContent = new Map<number, string>();
    for (const r of requests) {
      expect(r.tokens).toHaveLength(16 + 3 * 24 + 8);
      const ids = docIds(r.group!);
      expect(ids).toHaveLength(3);
      expect(ids).toEqual([...new Set(ids)].sort((a, b) => a - b));
      ids.forEach((d, i) => {
        const content = r.tokens!.slice(16 + i * 24, 16 + (i + 1) * 24).join(',');
        expect(docContent.get(d) ?? content).toBe(content);
        docContent.set(d, content);
      });
    }
    expect(new Set(requests.map((r) => r.tokens!.slice(0, 16).join(','))).size).toBe(1);
  });

  it('retrieves popular documents far more often (Zipf)', () => {
    const counts = new Array<number>(20).fill(0);
    for (const r of ragWorkload(small)) for (const d of docIds(r.group!)) counts[d]!++;
    expect(counts[0]).toBeGreaterThan(counts[9]! * 3);
    expect(counts[1]).toBeGreaterThan(counts[19]!);
  });

  it('draws without replacement even when k is the whole pool', () => {
    const all = drawWithoutReplacement(zipfWeights(6, 3), 6, mulberry32(1));
    expect(all).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('rejects k larger than the pool, naming the parameter', () => {
    expect(() => ragWorkload({ ...small, docsPerRequest: 21 })).toThrow('docsPerRequest: expected an integer in [1, 20], got 21');
    expect(() => ragWorkload({ ...small, zipfExponent: -1 })).toThrow('zipfExponent');
  });
});
