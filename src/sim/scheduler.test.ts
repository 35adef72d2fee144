import { describe, expect, it } from '@jest/globals';
import { requestHasher } from './hashing.ts';
import { SimRequest } from './request.ts';
import { Scheduler } from './scheduler.ts';

const BS = 4;
let n = 0;
const req = (len: number, maxTokens: number, start = 1) =>
  new SimRequest({
    id: `s${n++}`,
    promptTokens: Array.from({ length: len }, (_, i) => start + i),
    maxTokens,
    blockSize: BS,
    hasher: requestHasher({ blockSize: BS, hashSeed: null }, null, null),
    arrivalMs: 0,
  });

describe('Scheduler', () => {
  it('splits a prompt into chunks under the per-step token budget and stores each chunk as it is scheduled', () => {
    const s = new Scheduler({ maxNumSeqs: 4, maxNumBatchedTokens: 8, maxModelLen: 64, blockSize: BS, numBlocks: 32 });
    const r = req(20, 1);
    s.add(r);
    const chunks: number[] = [];
    const stored: number[][] = [];
    while (s.hasWork()) {
      const step = s.schedule();
      chunks.push(step.prefillTokens);
      for (const e of s.update(step, () => 7).events) if (e.type === 'BlockStored') stored.push(e.tokenIds);
    }
    expect(chunks).toEqual([8, 8, 4]);
    expect(stored.map((t) => t.length)).toEqual([8, 8, 4]);
    expect(r.outputTokens).toEqual([7]);
  });

  it('admits at most --max-num-seqs requests and shares one token budget between them', () => {
    const s = new Scheduler({ maxNumSeqs: 2, maxNumBatchedTokens: 10, maxModelLen: 64, blockSize: BS, numBlocks: 64 });
    const [a, b, c] = [req(6, 3, 1), req(6, 3, 100), req(6, 3, 200)];
    for (const r of [a, b, c]) s.add(r);
    const step = s.schedule();
    expect(step.scheduled.map((x) => [x.request.id, x.numTokens])).toEqual([
      [a.id, 6],
      [b.id, 4],
    ]);
    expect(s.waiting).toEqual([c]);
  });

  it('preempts the newest running request when a decode needs a block and none is free', () => {
    const s = new Scheduler({ maxNumSeqs: 4, maxNumBatchedTokens: 64, maxModelLen: 32, blockSize: BS, numBlocks: 5 });
    const a = req(8, 6, 1);
    const b = req(8, 6, 100);
    s.add(a);
    s.add(b);
    const preempted: string[] = [];
    let token = 0;
    for (let i = 0; i < 50 && s.hasWork(); i++) {
      const step = s.schedule();
      preempted.push(...step.preempted.map((r) => r.id));
      s.update(step, () => 500 + token++);
    }
    expect(preempted[0]).toBe(b.id);
    expect(b.numPreemptions).toBeGreaterThan(0);
    expect(a.status).toBe('finished');
    expect(b.status).toBe('finished');
    expect(b.numOutputTokens).toBe(6);
  });
});
