import { describe, expect, it } from '@jest/globals';
import { decodeEventBatch } from './decode.ts';
import { digestToUint64, VllmBlockHasher } from '../block-hash.ts';
import { encodeEventBatch } from './encode.ts';
import type { BlockStoredEvent } from './types.ts';
import type { KvEventsEncoding, SimKvEvent } from './engine-events.ts';

const hasher = new VllmBlockHasher({ blockSize: 4, hashSeed: '0' });
const [h0, h1, h2] = hasher.hashes([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]) as [Uint8Array, Uint8Array, Uint8Array];
const events: SimKvEvent[] = [
  {
    type: 'BlockStored',
    blockHashes: [h1, h2],
    parentBlockHash: h0,
    tokenIds: [5, 6, 7, 8, 9, 10, 11, 12],
    blockSize: 4,
    loraId: 2,
    loraName: 'ad',
    extraKeys: [['ad'], ['ad']],
  },
  { type: 'BlockRemoved', blockHash: h0 },
  { type: 'AllBlocksCleared' },
];

describe('encodeEventBatch', () => {
  it('publishes the low 8 digest bytes big-endian as the uint64 hash, like vLLM', () => {
    const batch = decodeEventBatch(encodeEventBatch(1, events, { encoding: 'map', hashForm: 'uint64', dpRank: 0 }));
    const stored = batch.events[0] as BlockStoredEvent;
    expect([...stored.blockHashes]).toEqual([digestToUint64(h1), digestToUint64(h2)]);
    expect(stored.parentBlockHash).toBe(digestToUint64(h0));
  });

  for (const encoding of ['map', 'array'] as KvEventsEncoding[]) {
    it(`round-trips through the indexer's decoder in ${encoding} form`, () => {
      const batch = decodeEventBatch(encodeEventBatch(12.5, events, { encoding, hashForm: 'uint64', dpRank: 3 }));
      expect(batch.ts).toBe(12.5);
      expect(batch.dpRank).toBe(3);
      expect(batch.events.map((e) => e.type)).toEqual(['BlockStored', 'BlockRemoved', 'AllBlocksCleared']);
      const stored = batch.events[0]!;
      if (stored.type !== 'BlockStored') throw new Error('expected BlockStored');
      expect([...stored.blockHashes]).toEqual([digestToUint64(h1), digestToUint64(h2)]);
      expect(stored.parentBlockHash).toBe(digestToUint64(h0));
      expect([...stored.tokenIds]).toEqual([5, 6, 7, 8, 9, 10, 11, 12]);
      expect(stored.loraId).toBe(2);
      if (encoding === 'map') expect(stored.loraName).toBe('ad');
      const removed = batch.events[1]!;
      if (removed.type !== 'BlockRemoved') throw new Error('expected BlockRemoved');
      expect([...removed.blockHashes]).toEqual([digestToUint64(h0)]);
    });
  }

  it('decodes raw 32-byte hashes to the same engine keys', () => {
    const batch = decodeEventBatch(encodeEventBatch(1, events.slice(0, 1), { encoding: 'map', hashForm: 'bytes', dpRank: 0 }));
    const stored = batch.events[0]!;
    if (stored.type !== 'BlockStored') throw new Error('expected BlockStored');
    expect([...stored.blockHashes]).toEqual([digestToUint64(h1), digestToUint64(h2)]);
  });
});
