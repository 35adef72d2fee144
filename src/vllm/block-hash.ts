// vLLM's prefix-caching block hash, byte-exact with vLLM 0.33: hash = sha256(serialized (parent
// digest, token-id tuple, extra keys | None)), chained from NONE_HASH = hash(seed). Serialized as
// canonical CBOR (--prefix-caching-hash-algo sha256_cbor, the reproducible one) or as pickle protocol
// 5 (`sha256`, vLLM's default). Owns the block encoding, the extra keys (LoRA, cache_salt,
// multimodal) and the engine key vLLM publishes in KV events (low 8 bytes, big-endian).
// Golden vectors from vLLM's own Python: testdata/vllm-block-hashes.json (hack/golden/).

import { hash as oneShotHash } from 'node:crypto';
import { CborWriter, encodeCbor } from './cbor.ts';
import { PICKLE_FRAME_START, PickleWriter, pickleString, utf8Of } from './pickle.ts';

/**
 * How extra keys are shaped inside the hashed tuple.
 * - `tagged` (vLLM 0.33): `("lora", name, path)`, `("mm", identifier, offset)`, `("cache_salt", salt)`.
 * - `untagged` (earlier vLLM, and the shape 0.33 still publishes in BlockStored.extra_keys):
 *   bare LoRA name, `(identifier, offset)`, bare salt.
 */
export type ExtraKeysFormat = 'tagged' | 'untagged';

/**
 * vLLM's --prefix-caching-hash-algo values whose hashes do not depend on the process: `sha256_cbor`
 * (canonical CBOR, our default: the one vLLM documents as cross-language) and `sha256` (pickle
 * protocol 5, vLLM 0.33's default). The xxhash variants are out of scope.
 */
export type VllmHashAlgo = 'sha256_cbor' | 'sha256';

/** A multimodal item's placeholder span in the prompt (vLLM's mm_position) and its content hash. */
export interface VllmMmFeature {
  identifier: string;
  offset: number;
  length: number;
}

export interface VllmHashOptions {
  blockSize: number;
  /** PYTHONHASHSEED as vLLM sees it; null means unset (vLLM 0.33 then seeds with "vllm-none-hash"). */
  hashSeed: string | null;
  loraName?: string | null;
  /** The adapter path: part of vLLM 0.33's tagged LoRA key, so required with `loraName` when tagged. */
  loraPath?: string | null;
  cacheSalt?: string | null;
  /** Sorted by offset and non-overlapping, as vLLM assumes. */
  mmFeatures?: VllmMmFeature[];
  /** Defaults to `tagged` (vLLM 0.33). */
  extraKeysFormat?: ExtraKeysFormat;
  /** Defaults to `sha256_cbor`. */
  hashAlgo?: VllmHashAlgo;
}

/** The seed vLLM 0.33 derives NONE_HASH from when PYTHONHASHSEED is unset and the hash is sha256*. */
export const DEFAULT_NONE_HASH_SEED = 'vllm-none-hash';

const DIGEST_BYTES = 32;
const LITTLE_ENDIAN_HOST = new Uint8Array(new BigUint64Array([1n]).buffer)[0] === 1;

function sha256(data: Uint8Array): Uint8Array {
  return oneShotHash('sha256', data, 'buffer');
}

const noneHashBySeed = new Map<string, Uint8Array>();

/**
 * vLLM's NONE_HASH, the parent digest of block 0: the hash of the seed string (CBOR text string for
 * sha256_cbor, pickled str for sha256).
 */
export function noneHash(hashSeed: string | null, hashAlgo: VllmHashAlgo = 'sha256_cbor'): Uint8Array {
  const seed = hashSeed ?? DEFAULT_NONE_HASH_SEED;
  const cacheKey = `${hashAlgo}\0${seed}`;
  let digest = noneHashBySeed.get(cacheKey);
  if (!digest) {
    digest = sha256(hashAlgo === 'sha256' ? pickleString(seed) : encodeCbor(seed));
    noneHashBySeed.set(cacheKey, digest);
  }
  return digest.slice();
}

/** The engine key vLLM puts in KV events: int.from_bytes(digest, "big") & (2**64 - 1). */
export function digestToUint64(digest: Uint8Array): bigint {
  if (digest.length < 8) throw new RangeError(`digest must have at least 8 bytes, got ${digest.length}`);
  let value = 0n;
  for (let i = digest.length - 8; i < digest.length; i++) value = (value << 8n) | BigInt(digest[i]!);
  return value;
}

function checkOptions(opts: VllmHashOptions): void {
  if (!Number.isSafeInteger(opts.blockSize) || opts.blockSize < 1) {
    throw new RangeError(`blockSize must be a positive integer, got ${String(opts.blockSize)}`);
  }
  if (opts.hashSeed !== null && typeof opts.hashSeed !== 'string') {
    throw new TypeError(`hashSeed must be a string or null, got ${typeof opts.hashSeed}`);
  }
  const algo = opts.hashAlgo ?? 'sha256_cbor';
  if (algo !== 'sha256_cbor' && algo !== 'sha256') {
    throw new RangeError(`hashAlgo must be "sha256_cbor" or "sha256", got ${String(algo)}`);
  }
  const format = opts.extraKeysFormat ?? 'tagged';
  if (format !== 'tagged' && format !== 'untagged') {
    throw new RangeError(`extraKeysFormat must be "tagged" or "untagged", got ${String(format)}`);
  }
  if (opts.loraName != null && format === 'tagged' && opts.loraPath == null) {
    throw new RangeError(
      'loraPath is required with loraName: vLLM 0.33 hashes ("lora", name, path); ' +
        'use extraKeysFormat "untagged" for vLLM versions that hashed the bare name',
    );
  }
  let previousEnd = 0;
  for (const [i, f] of (opts.mmFeatures ?? []).entries()) {
    if (typeof f.identifier !== 'string') throw new TypeError(`mmFeatures[${i}].identifier must be a string`);
    if (!Number.isSafeInteger(f.offset) || f.offset < 0) {
      throw new RangeError(`mmFeatures[${i}].offset must be a non-negative integer, got ${String(f.offset)}`);
    }
    if (!Number.isSafeInteger(f.length) || f.length < 0) {
      throw new RangeError(`mmFeatures[${i}].length must be a non-negative integer, got ${String(f.length)}`);
    }
    if (f.offset < previousEnd) {
      throw new RangeError(`mmFeatures[${i}] starts at ${f.offset}, inside or before the previous item (sorted, non-overlapping expected)`);
    }
    previousEnd = f.offset + f.length;
  }
}

/** The block being hashed: where its tokens are, and which multimodal items (a range) overlap it. */
interface BlockContext {
  tokens: ArrayLike<number>;
  /** Where the block's tokens start in `tokens`. */
  tokenStart: number;
  /** The block's first token position in the request (for multimodal offsets). */
  start: number;
  blockIndex: number;
  mmFrom: number;
  mmTo: number;
}

interface MmItem {
  identifier: string;
  offset: number;
  end: number;
}

/**
 * Serializes a block tuple into a reused buffer with the parent digest at a fixed offset, so that
 * chaining writes 32 bytes instead of re-encoding the prefix.
 */
interface BlockSerializer {
  setParent(digest: Uint8Array): void;
  /** The serialized block as a view of the shared buffer, valid until the next call. */
  encode(block: BlockContext): Uint8Array;
}

function badToken(block: BlockContext, bad: number): RangeError {
  const i = block.tokenStart + bad;
  return new RangeError(`token id at index ${i} must be a non-negative safe integer, got ${String(block.tokens[i])}`);
}

/** Shared by every CBOR serializer: hashing is synchronous, so one encode buffer serves all hashers. */
const cborWriter = new CborWriter(4096);
/** 0x83: a 3-element array; 0x58 0x20: a 32-byte byte string (the parent digest follows). */
const CBOR_PREFIX = Uint8Array.of(0x83, 0x58, DIGEST_BYTES);
const CBOR_PARENT_AT = CBOR_PREFIX.length;
const CBOR_TOKENS_AT = CBOR_PARENT_AT + DIGEST_BYTES;
cborWriter.raw(CBOR_PREFIX);
const CBOR_MM_TAG = encodeCbor('mm');

class CborBlockSerializer implements BlockSerializer {
  private readonly blockSize: number;
  private readonly tagged: boolean;
  /** The LoRA key, CBOR-encoded once; null without LoRA. */
  private readonly loraKey: Uint8Array | null;
  /** The cache_salt key for block 0, CBOR-encoded once; null when vLLM adds none. */
  private readonly saltKey: Uint8Array | null;
  private readonly mmItems: readonly MmItem[];
  private readonly mmIdentifiers: readonly Uint8Array[];

  constructor(opts: VllmHashOptions, mmItems: readonly MmItem[]) {
    this.blockSize = opts.blockSize;
    this.tagged = (opts.extraKeysFormat ?? 'tagged') === 'tagged';
    this.loraKey = opts.loraName == null ? null : encodeCbor(this.tagged ? ['lora', opts.loraName, opts.loraPath ?? ''] : opts.loraName);
    this.saltKey = opts.cacheSalt ? encodeCbor(this.tagged ? ['cache_salt', opts.cacheSalt] : opts.cacheSalt) : null;
    this.mmItems = mmItems;
    this.mmIdentifiers = mmItems.map((m) => encodeCbor(m.identifier));
  }

  setParent(digest: Uint8Array): void {
    cborWriter.buffer.set(digest, CBOR_PARENT_AT);
  }

  encode(block: BlockContext): Uint8Array {
    const w = cborWriter;
    w.reset(CBOR_TOKENS_AT);
    w.arrayHeader(this.blockSize);
    const bad = w.uintRun(block.tokens, block.tokenStart, this.blockSize);
    if (bad >= 0) throw badToken(block, bad);
    const salt = block.blockIndex === 0 ? this.saltKey : null;
    const count = (this.loraKey ? 1 : 0) + (block.mmTo - block.mmFrom) + (salt ? 1 : 0);
    if (count === 0) {
      w.null();
      return w.view();
    }
    w.arrayHeader(count);
    if (this.loraKey) w.raw(this.loraKey);
    for (let i = block.mmFrom; i < block.mmTo; i++) {
      if (this.tagged) {
        w.arrayHeader(3);
        w.raw(CBOR_MM_TAG);
      } else {
        w.arrayHeader(2);
      }
      w.raw(this.mmIdentifiers[i]!);
      // An item that started in an earlier block has a negative offset relative to this one.
      w.int(this.mmItems[i]!.offset - block.start);
    }
    if (salt) w.raw(salt);
    return w.view();
  }
}

const pickleWriter = new PickleWriter();
/** PROTO, FRAME header, SHORT_BINBYTES 32: the parent digest starts here. */
const PICKLE_PARENT_AT = PICKLE_FRAME_START + 2;
/** After the parent digest and its MEMOIZE (memo 0). */
const PICKLE_TOKENS_AT = PICKLE_PARENT_AT + DIGEST_BYTES + 1;
const PICKLE_MM_TAG = utf8Of('mm');
const PICKLE_LORA_TAG = utf8Of('lora');
const PICKLE_SALT_TAG = utf8Of('cache_salt');

/**
 * pickle.dumps((parent, tokens, extra_keys), protocol=5). Strings are assumed to be distinct Python
 * objects except vLLM's "mm" literal, which every multimodal key of a block shares (pickle then
 * writes a BINGET): that is how vLLM builds them.
 */
class PickleBlockSerializer implements BlockSerializer {
  private readonly blockSize: number;
  private readonly tagged: boolean;
  private readonly loraName: Uint8Array | null;
  private readonly loraPath: Uint8Array;
  private readonly salt: Uint8Array | null;
  private readonly mmItems: readonly MmItem[];
  private readonly mmIdentifiers: readonly Uint8Array[];

  constructor(opts: VllmHashOptions, mmItems: readonly MmItem[]) {
    this.blockSize = opts.blockSize;
    this.tagged = (opts.extraKeysFormat ?? 'tagged') === 'tagged';
    this.loraName = opts.loraName == null ? null : utf8Of(opts.loraName);
    this.loraPath = utf8Of(opts.loraPath ?? '');
    this.salt = opts.cacheSalt ? utf8Of(opts.cacheSalt) : null;
    this.mmItems = mmItems;
    this.mmIdentifiers = mmItems.map((m) => utf8Of(m.identifier));
  }

  setParent(digest: Uint8Array): void {
    const w = pickleWriter;
    w.begin();
    w.bytes(digest);
  }

  encode(block: BlockContext): Uint8Array {
    const w = pickleWriter;
    w.rewind(PICKLE_TOKENS_AT, 1);
    const size = this.blockSize;
    w.beginTuple(size);
    const bad = w.uintRun(block.tokens, block.tokenStart, size);
    if (bad >= 0) throw badToken(block, bad);
    w.endTuple(size);
    const salt = block.blockIndex === 0 ? this.salt : null;
    const count = (this.loraName ? 1 : 0) + (block.mmTo - block.mmFrom) + (salt ? 1 : 0);
    if (count === 0) {
      w.none();
    } else {
      w.beginTuple(count);
      if (this.loraName) {
        if (this.tagged) {
          w.text(PICKLE_LORA_TAG);
          w.text(this.loraName);
          w.text(this.loraPath);
          w.endTuple(3);
        } else {
          w.text(this.loraName);
        }
      }
      let mmTagMemo = -1;
      for (let i = block.mmFrom; i < block.mmTo; i++) {
        if (this.tagged) {
          if (mmTagMemo < 0) mmTagMemo = w.text(PICKLE_MM_TAG);
          else w.get(mmTagMemo);
        }
        w.text(this.mmIdentifiers[i]!);
        w.int(this.mmItems[i]!.offset - block.start);
        w.endTuple(this.tagged ? 3 : 2);
      }
      if (salt) {
        if (this.tagged) {
          w.text(PICKLE_SALT_TAG);
          w.text(salt);
          w.endTuple(2);
        } else {
          w.text(salt);
        }
      }
      w.endTuple(count);
    }
    w.endTuple(3);
    return w.finish();
  }
}

/**
 * Hashes blocks of one request (one LoRA, salt and set of multimodal items). Stateless between
 * calls apart from constants encoded once in the constructor.
 */
export class VllmBlockHasher {
  readonly blockSize: number;
  private readonly root: Uint8Array;
  private readonly mm: readonly MmItem[];
  private readonly serializer: BlockSerializer;
  /** Reused per call so that hashing a block allocates only its digest. */
  private readonly block: BlockContext = { tokens: [], tokenStart: 0, start: 0, blockIndex: 0, mmFrom: 0, mmTo: 0 };

  constructor(opts: VllmHashOptions) {
    checkOptions(opts);
    this.blockSize = opts.blockSize;
    const algo = opts.hashAlgo ?? 'sha256_cbor';
    this.root = noneHash(opts.hashSeed, algo);
    this.mm = (opts.mmFeatures ?? []).map((f) => ({ identifier: f.identifier, offset: f.offset, end: f.offset + f.length }));
    this.serializer = algo === 'sha256' ? new PickleBlockSerializer(opts, this.mm) : new CborBlockSerializer(opts, this.mm);
  }

  /** Hash of block `blockIndex` given its parent's digest (null for block 0) and its tokens. */
  hashBlock(parent: Uint8Array | null, blockTokens: ArrayLike<number>, blockIndex: number): Uint8Array {
    if (blockTokens.length !== this.blockSize) {
      throw new RangeError(`a block has exactly ${this.blockSize} tokens (full blocks only), got ${blockTokens.length}`);
    }
    if (!Number.isSafeInteger(blockIndex) || blockIndex < 0) {
      throw new RangeError(`blockIndex must be a non-negative integer, got ${String(blockIndex)}`);
    }
    if (parent !== null && parent.length !== DIGEST_BYTES) {
      throw new RangeError(`parent digest must be ${DIGEST_BYTES} bytes, got ${parent.length}`);
    }
    // vLLM substitutes NONE_HASH for a falsy parent (None or b"").
    this.serializer.setParent(parent ?? this.root);
    return this.digest(blockTokens, 0, blockIndex);
  }

  /** Digests of all full blocks of `tokens`, chained from NONE_HASH. */
  hashes(tokens: ArrayLike<number>): Uint8Array[] {
    const count = Math.floor(tokens.length / this.blockSize);
    const out = new Array<Uint8Array>(count);
    let parent = this.root;
    for (let i = 0; i < count; i++) {
      this.serializer.setParent(parent);
      parent = this.digest(tokens, i * this.blockSize, i);
      out[i] = parent;
    }
    return out;
  }

  /** Engine keys (low 8 bytes of each digest, big-endian) of all full blocks of `tokens`. */
  engineKeys(tokens: ArrayLike<number>): BigUint64Array {
    const count = Math.floor(tokens.length / this.blockSize);
    const keys = new BigUint64Array(count);
    const words = new DataView(keys.buffer);
    let parent = this.root;
    for (let i = 0; i < count; i++) {
      this.serializer.setParent(parent);
      const digest = this.digest(tokens, i * this.blockSize, i);
      const hi = ((digest[24]! << 24) | (digest[25]! << 16) | (digest[26]! << 8) | digest[27]!) >>> 0;
      const lo = ((digest[28]! << 24) | (digest[29]! << 16) | (digest[30]! << 8) | digest[31]!) >>> 0;
      words.setUint32(i * 8, LITTLE_ENDIAN_HOST ? lo : hi, LITTLE_ENDIAN_HOST);
      words.setUint32(i * 8 + 4, LITTLE_ENDIAN_HOST ? hi : lo, LITTLE_ENDIAN_HOST);
      parent = digest;
    }
    return keys;
  }

  private digest(tokens: ArrayLike<number>, tokenStart: number, blockIndex: number): Uint8Array {
    const block = this.block;
    const start = blockIndex * this.blockSize;
    block.tokens = tokens;
    block.tokenStart = tokenStart;
    block.start = start;
    block.blockIndex = blockIndex;
    // vLLM's order: LoRA, multimodal items overlapping [start, end), then cache_salt on block 0.
    const end = start + this.blockSize;
    const mm = this.mm;
    let mmFrom = 0;
    while (mmFrom < mm.length && mm[mmFrom]!.end <= start) mmFrom++;
    let mmTo = mmFrom;
    while (mmTo < mm.length && mm[mmTo]!.offset < end) mmTo++;
    block.mmFrom = mmFrom;
    block.mmTo = mmTo;
    const digest = sha256(this.serializer.encode(block));
    block.tokens = [];
    return digest;
  }
}

/** vLLM block hashes (32-byte digests) of every full block of `tokens`. */
export function vllmBlockHashes(tokens: ArrayLike<number>, opts: VllmHashOptions): Uint8Array[] {
  return new VllmBlockHasher(opts).hashes(tokens);
}

/** The uint64 engine keys vLLM publishes for every full block of `tokens`. */
export function vllmEngineKeys(tokens: ArrayLike<number>, opts: VllmHashOptions): BigUint64Array {
  return new VllmBlockHasher(opts).engineKeys(tokens);
}
