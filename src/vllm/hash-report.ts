// The `kvroute hash` report: parses token ids given as JSON text and lists each full block's vLLM
// digest and engine key. Kept out of the CLI file so that the parsing rules are unit-tested.

import { VllmBlockHasher, digestToUint64, type VllmHashOptions } from './block-hash.ts';

export interface VllmHashReport {
  /** 64 hex chars per full block. */
  hashes: string[];
  /** The low 8 bytes of each digest, big-endian, as a decimal string (vLLM's event block hash). */
  uint64: string[];
}

/** Thrown for input the caller should fix; the message says which field and what was expected. */
export class HashInputError extends Error {
  override name = 'HashInputError';
}

/** Parses a JSON array of non-negative integers (token ids) exactly, or says what is wrong. */
export function parseTokenIds(text: string): number[] {
  if (text.trim() === '') throw new HashInputError('stdin is empty: expected a JSON array of token ids, e.g. [1,2,3]');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new HashInputError(`stdin is not valid JSON (${(err as Error).message}): expected a JSON array of token ids`);
  }
  if (!Array.isArray(value)) {
    throw new HashInputError(`stdin must be a JSON array of token ids, got ${value === null ? 'null' : typeof value}`);
  }
  for (let i = 0; i < value.length; i++) {
    const id: unknown = value[i];
    // JSON numbers above 2^53 lose precision when parsed, which would hash a different token.
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
      throw new HashInputError(`token id at index ${i} must be a non-negative integer no larger than 2^53-1, got ${JSON.stringify(id)}`);
    }
  }
  return value as number[];
}

export function vllmHashReport(tokens: ArrayLike<number>, opts: VllmHashOptions): VllmHashReport {
  const digests = new VllmBlockHasher(opts).hashes(tokens);
  return {
    hashes: digests.map((d) => Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('hex')),
    uint64: digests.map((d) => digestToUint64(d).toString()),
  };
}
