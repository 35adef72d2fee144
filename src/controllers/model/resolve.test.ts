import { describe, it, expect } from '@jest/globals';
import { testModel } from '../testing.ts';
import { resolveModels } from './resolve.ts';

describe('resolveModels', () => {
  it('accepts the oldest of two models claiming one modelName in a pool and reports the other as ModelNameInUse', () => {
    const older = testModel('first', { modelName: 'chat', poolRef: { name: 'p' } }, '2026-01-01T00:00:00Z');
    const newer = testModel('second', { modelName: 'chat', poolRef: { name: 'p' } }, '2026-01-02T00:00:00Z');
    const r = resolveModels([newer, older], () => true);
    expect(r.get('first')!.accepted).toBe(true);
    expect(r.get('second')!.accepted).toBe(false);
    expect(r.get('second')!.conditions[0]).toMatchObject({ type: 'Accepted', status: 'False', reason: 'ModelNameInUse' });
    expect(r.get('second')!.conditions[0]!.message).toContain('"first"');
  });

  it('breaks a creation-time tie by name and lets the same modelName live in different pools', () => {
    const b = testModel('b', { modelName: 'chat', poolRef: { name: 'p' } });
    const a = testModel('a', { modelName: 'chat', poolRef: { name: 'p' } });
    const other = testModel('c', { modelName: 'chat', poolRef: { name: 'q' } });
    const r = resolveModels([b, a, other], () => true);
    expect([r.get('a')!.accepted, r.get('b')!.accepted, r.get('c')!.accepted]).toEqual([true, false, true]);
  });

  it('marks a model whose pool does not exist as unresolved and not accepted', () => {
    const m = testModel('m', { modelName: 'chat', poolRef: { name: 'missing' } });
    const r = resolveModels([m], () => false).get('m')!;
    expect(r.accepted).toBe(false);
    expect(r.conditions.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Accepted', 'False', 'PoolNotFound'],
      ['ResolvedRefs', 'False', 'PoolNotFound'],
    ]);
  });
});
