// `kvroute hash`: reads token ids (a JSON array) on stdin and prints vLLM's sha256_cbor block hashes
// and the uint64 engine keys vLLM publishes in KV events, one per full block. Exit code 2 on bad input.

import { Command, Option } from 'commander';
import type { ExtraKeysFormat, VllmHashAlgo, VllmHashOptions, VllmMmFeature } from '../vllm/block-hash.ts';
import { HashInputError, parseTokenIds, vllmHashReport } from '../vllm/hash-report.ts';

const BAD_INPUT_EXIT_CODE = 2;

interface HashFlags {
  blockSize: string;
  hashSeed?: string;
  loraName?: string;
  loraPath?: string;
  cacheSalt?: string;
  mmFeatures?: string;
  extraKeysFormat: ExtraKeysFormat | 'auto';
  hashAlgo: VllmHashAlgo;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function parseBlockSize(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1) {
    throw new HashInputError(`--block-size must be a positive integer, got "${text}"`);
  }
  return n;
}

function parseMmFeatures(text: string): VllmMmFeature[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new HashInputError('--mm-features must be JSON: [{"identifier": "...", "offset": N, "length": N}, ...]');
  }
  if (!Array.isArray(value)) throw new HashInputError('--mm-features must be a JSON array');
  return value.map((item: unknown, i) => {
    const f = item as Partial<VllmMmFeature> | null;
    if (
      f === null ||
      typeof f !== 'object' ||
      typeof f.identifier !== 'string' ||
      typeof f.offset !== 'number' ||
      typeof f.length !== 'number'
    ) {
      throw new HashInputError(`--mm-features[${i}] must be {"identifier": string, "offset": int, "length": int}`);
    }
    return { identifier: f.identifier, offset: f.offset, length: f.length };
  });
}

/**
 * vLLM 0.33 hashes the LoRA adapter path along with its name. Given a name without a path, the
 * only hash we can compute is the one earlier vLLM releases used (bare name), so `auto` picks that.
 */
function resolveFormat(flags: HashFlags): { format: ExtraKeysFormat; note?: string } {
  if (flags.extraKeysFormat !== 'auto') return { format: flags.extraKeysFormat };
  if (flags.loraName !== undefined && flags.loraPath === undefined) {
    return {
      format: 'untagged',
      note: 'kvroute hash: --lora-name without --lora-path: using untagged extra keys (vLLM before 0.33 hashed the bare LoRA name); pass --lora-path for vLLM 0.33',
    };
  }
  return { format: 'tagged' };
}

async function run(flags: HashFlags): Promise<void> {
  try {
    const { format, note } = resolveFormat(flags);
    const opts: VllmHashOptions = {
      blockSize: parseBlockSize(flags.blockSize),
      hashSeed: flags.hashSeed ?? null,
      loraName: flags.loraName ?? null,
      loraPath: flags.loraPath ?? null,
      cacheSalt: flags.cacheSalt ?? null,
      mmFeatures: flags.mmFeatures === undefined ? [] : parseMmFeatures(flags.mmFeatures),
      extraKeysFormat: format,
      hashAlgo: flags.hashAlgo,
    };
    const tokens = parseTokenIds(await readStdin());
    const report = vllmHashReport(tokens, opts);
    if (note) process.stderr.write(`${note}\n`);
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } catch (err) {
    // Options are checked again by the hasher (e.g. unsorted --mm-features); those are input errors too.
    if (err instanceof HashInputError || err instanceof RangeError || err instanceof TypeError) {
      process.stderr.write(`kvroute hash: ${err.message}\n`);
      process.exitCode = BAD_INPUT_EXIT_CODE;
      return;
    }
    throw err;
  }
}

export function command(): Command {
  return (
    new Command('hash')
      .summary('print vLLM sha256_cbor block hashes for token ids read from stdin')
      .usage('[options] < tokens.json')
      .addHelpText(
        'after',
        `
Reads a JSON array of token ids on stdin and prints one JSON object:
  {"hashes": ["<64 hex>", ...], "uint64": ["<decimal>", ...]}
one entry per full block (a trailing partial block is not hashed, as in vLLM). "uint64" is the
low 8 bytes of each digest read big-endian: the block hash vLLM publishes in KV events.
Semantics are vLLM 0.33's; --hash-algo picks its --prefix-caching-hash-algo (sha256_cbor unless
told otherwise; sha256, vLLM's default, pickles the block). Exit code 2 on bad input.

Example:
  echo '[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]' | kvroute hash --block-size 16 --hash-seed 0`,
      )
      .option('--block-size <n>', 'tokens per KV block (vLLM --block-size)', '16')
      .option('--hash-seed <seed>', `PYTHONHASHSEED of the vLLM pods; omit when unset (vLLM 0.33 then seeds with "vllm-none-hash")`)
      .option('--lora-name <name>', 'LoRA adapter name of the request')
      .option('--lora-path <path>', 'LoRA adapter path (vLLM 0.33 hashes it with the name)')
      .option('--cache-salt <salt>', 'cache_salt of the request (hashed into the first block only)')
      .option('--mm-features <json>', 'multimodal items: [{"identifier": "...", "offset": N, "length": N}, ...] sorted by offset')
      .addOption(
        new Option(
          '--extra-keys-format <format>',
          'shape of extra keys: tagged (vLLM 0.33) or untagged (earlier vLLM); auto picks untagged only for --lora-name without --lora-path',
        )
          .choices(['auto', 'tagged', 'untagged'])
          .default('auto'),
      )
      .addOption(
        new Option('--hash-algo <algo>', "vLLM's --prefix-caching-hash-algo").choices(['sha256_cbor', 'sha256']).default('sha256_cbor'),
      )
      // Usage errors (unknown option, bad choice) are bad input as much as bad stdin is.
      .exitOverride((err) => {
        if (err.exitCode !== 0) process.exit(BAD_INPUT_EXIT_CODE);
      })
      .action(async (flags: HashFlags) => {
        await run(flags);
      })
  );
}
