import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { mulberry32 } from '../../common/random.ts';
import { ModelTable } from './models.ts';

describe('ModelTable', () => {
  it('passes every model through at priority 0 when no model is configured', () => {
    const table = new ModelTable([]);
    expect(table.resolve('anything')).toEqual({ targetModel: 'anything', priority: 0 });
  });

  it('treats a model other than the base model as a LoRA adapter', () => {
    const table = new ModelTable([], { baseModel: 'base' });
    expect(table.resolve('base')).toEqual({ targetModel: 'base', priority: 0 });
    expect(table.resolve('adapter-1')).toEqual({ targetModel: 'adapter-1', priority: 0, loraName: 'adapter-1' });
  });

  it('rejects a model the table does not list', () => {
    const table = new ModelTable([{ modelName: 'chat' }]);
    expect(table.resolve('chat')).toEqual({ targetModel: 'chat', priority: 0 });
    expect(table.resolve('other')).toBeNull();
  });

  it("accepts the pool's base model even when the listed models do not name it", () => {
    const table = new ModelTable([{ modelName: 'chat', targetModels: [{ name: 'lora-a' }] }], { baseModel: 'base' });
    expect(table.resolve('base')).toEqual({ targetModel: 'base', priority: 0 });
    expect(table.resolve('chat')).toEqual({ targetModel: 'lora-a', priority: 0, loraName: 'lora-a' });
    expect(table.resolve('other')).toBeNull();
  });

  it('maps criticality to priority (Critical 1, Standard 0, Sheddable -1) unless priority is given', () => {
    const table = new ModelTable([
      { modelName: 'c', criticality: 'Critical' },
      { modelName: 's', criticality: 'Standard' },
      { modelName: 'x', criticality: 'Sheddable' },
      { modelName: 'p', criticality: 'Sheddable', priority: 7 },
    ]);
    expect(['c', 's', 'x', 'p'].map((m) => table.resolve(m)?.priority)).toEqual([1, 0, -1, 7]);
  });

  it('draws the target model by weight and names an adapter target as the LoRA', () => {
    const table = new ModelTable(
      [
        {
          modelName: 'chat',
          targetModels: [
            { name: 'base', weight: 1 },
            { name: 'lora-a', weight: 3 },
          ],
        },
      ],
      {
        baseModel: 'base',
        random: mulberry32(7),
      },
    );
    const counts: Record<string, number> = {};
    for (let i = 0; i < 4000; i++) {
      const r = table.resolve('chat')!;
      counts[r.targetModel] = (counts[r.targetModel] ?? 0) + 1;
      if (r.targetModel === 'lora-a') expect(r.loraName).toBe('lora-a');
      else expect(r.loraName).toBeUndefined();
    }
    expect(counts['lora-a']! / 4000).toBeGreaterThan(0.72);
    expect(counts['lora-a']! / 4000).toBeLessThan(0.78);
  });

  it('never draws a target of weight 0 while another has weight, and draws among all when every weight is 0', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (x) => {
        const weighted = new ModelTable(
          [
            {
              modelName: 'm',
              targetModels: [
                { name: 'a', weight: 0 },
                { name: 'b', weight: 2 },
                { name: 'c', weight: 0 },
              ],
            },
          ],
          {
            random: () => x,
          },
        );
        expect(weighted.resolve('m')?.targetModel).toBe('b');
        const zeros = new ModelTable(
          [
            {
              modelName: 'm',
              targetModels: [
                { name: 'a', weight: 0 },
                { name: 'b', weight: 0 },
              ],
            },
          ],
          { random: () => x },
        );
        expect(['a', 'b']).toContain(zeros.resolve('m')?.targetModel);
      }),
    );
  });

  it('counts a target without a weight as weight 1', () => {
    const table = new ModelTable([{ modelName: 'm', targetModels: [{ name: 'a' }, { name: 'b' }] }], { random: () => 0.75 });
    expect(table.resolve('m')?.targetModel).toBe('b');
  });
});
