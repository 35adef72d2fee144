import { describe, expect, it } from '@jest/globals';
import { BlockHasher, canonicalChatText } from './approx-prefix.ts';
import { endpoint, profileConfig, request, testScheduler } from '../test-helpers.ts';

const pool = [endpoint('10.0.0.1:8000'), endpoint('10.0.0.2:8000'), endpoint('10.0.0.3:8000')];
const approxConfig = (parameters: Record<string, unknown> = {}) =>
  profileConfig([
    { type: 'approx-prefix-cache-producer', parameters: { blockSizeChars: 8, ...parameters }, inProfile: false },
    { type: 'prefix-cache-scorer', weight: 1 },
  ]);

describe('BlockHasher', () => {
  it("hashes full blocks only, up to the block limit, chained so a block's key depends on all before it", () => {
    const hasher = new BlockHasher({ blockBytes: 4, maxBlocks: 3 });
    const keys = hasher.keys(request({ prompt: 'aaaabbbbcc' }))!;
    expect(keys.length).toBe(2);
    expect([...hasher.keys(request({ prompt: 'aaaabbbbccccdddd' }))!]).toEqual([
      ...keys,
      hasher.keys(request({ prompt: 'aaaabbbbcccc' }))![2],
    ]);
    // Same second block after a different first block: a different key.
    expect(hasher.keys(request({ prompt: 'xxxxbbbb' }))![1]).not.toBe(keys[1]);
    expect(hasher.keys(request({ prompt: 'aaaabbbb', targetModel: 'other' }))![0]).not.toBe(keys[0]);
    expect(hasher.keys(request({ prompt: 'aaaabbbb', cacheSalt: 'tenant-a' }))![0]).not.toBe(keys[0]);
    expect(hasher.keys(request())).toBeUndefined();
  });

  it('hashes token ids as 4 bytes each and multi-byte text by its UTF-8 bytes', () => {
    const hasher = new BlockHasher({ blockBytes: 8, maxBlocks: 10 });
    expect(hasher.keys(request({ tokens: [1, 2, 3, 4, 5] }))!.length).toBe(2);
    expect(hasher.keys(request({ prompt: 'ééééé' }))!.length).toBe(1);
  });

  it('serializes a chat so a growing conversation keeps its prefix', () => {
    const turn1 = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Hi' },
    ];
    const turn2 = [
      ...turn1,
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1' }] },
      { role: 'user', content: [{ type: 'text', text: 'more' }] },
    ];
    const first = canonicalChatText({ messages: turn1 });
    expect(canonicalChatText({ messages: turn2 }).startsWith(first)).toBe(true);
    expect(canonicalChatText({ messages: turn2 })).toContain('"tool_calls":[{"id":"c1"}]');
    const tools = [{ type: 'function' as const, function: { name: 'f' } }];
    expect(canonicalChatText({ messages: turn1, tools }).startsWith(first)).toBe(true);
  });
});

describe('approx-prefix-cache-producer with prefix-cache-scorer', () => {
  it('learns after a pick: the same prefix then scores on the endpoint that took it', async () => {
    const scheduler = testScheduler(approxConfig());
    const prompt = 'system prompt shared by every request of the tenant';
    const first = await scheduler.schedule(request({ prompt }), pool);
    expect(Object.values(first.scores)).toEqual([0, 0, 0]);
    const picked = first.targets[0]!.address;
    const again = await scheduler.schedule(request({ prompt: `${prompt} and a new question` }), pool);
    const blocks = Math.floor(prompt.length / 8);
    expect(again.targets[0]!.address).toBe(picked);
    expect(again.scores[picked]).toBeCloseTo(blocks / Math.floor(`${prompt} and a new question`.length / 8));
    for (const other of pool.filter((e) => e.endpoint.address !== picked)) expect(again.scores[other.endpoint.address]).toBe(0);
  });

  it('keeps chat conversations on the endpoint that served their earlier turns', async () => {
    const scheduler = testScheduler(approxConfig());
    const turn1 = [
      { role: 'system', content: 'A long system prompt for the assistant. '.repeat(3) },
      { role: 'user', content: 'First question?' },
    ];
    const first = await scheduler.schedule(request({ kind: 'chat', messages: turn1 }), pool);
    const turn2 = [...turn1, { role: 'assistant', content: 'First answer.' }, { role: 'user', content: 'Second question?' }];
    const second = await scheduler.schedule(request({ kind: 'chat', messages: turn2 }), pool);
    expect(second.targets[0]!.address).toBe(first.targets[0]!.address);
    expect(second.scores[first.targets[0]!.address]).toBeGreaterThan(0.5);
  });

  it('forgets the oldest blocks of an endpoint past lruCapacityPerServer', async () => {
    const scheduler = testScheduler(approxConfig({ lruCapacityPerServer: 4 }));
    const only = [pool[0]!];
    const a = 'AAAAAAAABBBBBBBBCCCCCCCC';
    await scheduler.schedule(request({ prompt: a }), only);
    expect((await scheduler.schedule(request({ prompt: a }), only)).scores['10.0.0.1:8000']).toBe(1);
    // Four other blocks fill the LRU of four: the first prompt's blocks are evicted.
    await scheduler.schedule(request({ prompt: 'DDDDDDDDEEEEEEEEFFFFFFFFGGGGGGGG' }), only);
    expect((await scheduler.schedule(request({ prompt: a }), only)).scores['10.0.0.1:8000']).toBe(0);
  });

  it('purges an endpoint that has not been a candidate for a minute', async () => {
    let now = 1_000_000;
    const scheduler = testScheduler(approxConfig(), { now: () => now });
    const prompt = 'a prompt long enough for several blocks';
    const first = await scheduler.schedule(request({ prompt }), [pool[0]!]);
    expect(first.targets[0]!.address).toBe('10.0.0.1:8000');
    now += 30_000;
    expect((await scheduler.schedule(request({ prompt }), pool)).scores['10.0.0.1:8000']).toBe(1);
    // The endpoint leaves the pool; requests keep coming to the others.
    now += 61_000;
    await scheduler.schedule(request({ prompt: 'unrelated' }), [pool[1]!]);
    now += 11_000;
    await scheduler.schedule(request({ prompt: 'unrelated' }), [pool[1]!]);
    // Back with the same address (a new pod): its cache is cold, and so is the index.
    expect((await scheduler.schedule(request({ prompt }), pool)).scores['10.0.0.1:8000']).toBe(0);
  });

  it("accepts llm-d's token-based parameters and rejects conflicting sizes", async () => {
    expect(() => testScheduler(approxConfig({ blockSize: 16 }))).toThrow(
      'plugins[0].parameters.blockSize: set only one of blockSizeChars, blockSize (they are one block size in different units)',
    );
    const scheduler = testScheduler(
      profileConfig([
        { type: 'approx-prefix-cache-producer', parameters: { blockSize: 2, maxPrefixTokensToMatch: 4 }, inProfile: false },
        { type: 'prefix-cache-scorer' },
      ]),
    );
    // 8-byte blocks, at most 2: a prompt of 40 bytes counts 2 blocks.
    await scheduler.schedule(request({ prompt: 'x'.repeat(40) }), [pool[0]!]);
    expect((await scheduler.schedule(request({ prompt: `${'x'.repeat(16)}${'y'.repeat(24)}` }), [pool[0]!])).scores['10.0.0.1:8000']).toBe(
      1,
    );
  });
});
