// Drives hack/kv_publisher.py, a vLLM-style KV-event publisher in its own Python process (pyzmq +
// msgspec), through its JSON-lines protocol on stdin/stdout.

import { spawn } from 'node:child_process';
import path from 'node:path';
import { JsonLinesPeer } from './json-lines-peer.ts';
import { peerPython } from './python.ts';
import { repoRoot } from './repo-root.ts';

export interface KvPublisherOptions {
  /** Where the PUB socket connects, or binds with `bind` (port 0: the kernel picks; read `endpoint`). */
  endpoint: string;
  /** Bind the PUB socket (per-pod mode) instead of connecting to the indexer (central mode). */
  bind?: boolean;
  /** Where the replay ROUTER binds (port 0 allowed; read `replayEndpoint`). */
  replay?: string;
  topic: string;
  encoding?: 'map' | 'array';
  replyForm?: 'topic' | 'legacy';
  bufferSteps?: number;
  dpRank?: number;
}

/** An event for the publisher: hashes as bigint, sent as decimal strings (JSON has no uint64). */
export interface PublisherEvent {
  type: 'BlockStored' | 'BlockRemoved' | 'AllBlocksCleared';
  block_hashes?: bigint[];
  parent_block_hash?: bigint | null;
  token_ids?: number[];
  block_size?: number;
  medium?: string | null;
  [field: string]: unknown;
}

export class KvPublisherProcess {
  /** The PUB endpoint: the one bound (port 0 resolved) with `bind`, else the one connected to. */
  readonly endpoint: string;
  /** The replay ROUTER's bound endpoint (port 0 resolved), when it has one. */
  readonly replayEndpoint: string | null;
  private readonly peer: JsonLinesPeer;

  private constructor(peer: JsonLinesPeer, endpoint: string, replayEndpoint: string | null) {
    this.peer = peer;
    this.endpoint = endpoint;
    this.replayEndpoint = replayEndpoint;
  }

  static async start(options: KvPublisherOptions): Promise<KvPublisherProcess> {
    const args = [path.join(repoRoot, 'hack/kv_publisher.py'), '--endpoint', options.endpoint, '--topic', options.topic];
    if (options.bind) args.push('--bind');
    if (options.replay) args.push('--replay', options.replay);
    if (options.encoding) args.push('--encoding', options.encoding);
    if (options.replyForm) args.push('--reply-form', options.replyForm);
    if (options.bufferSteps !== undefined) args.push('--buffer-steps', String(options.bufferSteps));
    if (options.dpRank !== undefined) args.push('--dp-rank', String(options.dpRank));
    const peer = new JsonLinesPeer('kv_publisher', spawn(peerPython(), args, { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] }));
    const ready = (await peer.next()) as { ready?: boolean; endpoint?: string; replay?: string | null };
    if (!ready.ready || typeof ready.endpoint !== 'string')
      throw new Error(`kv_publisher did not start: ${JSON.stringify(ready)} ${peer.stderr}`);
    return new KvPublisherProcess(peer, ready.endpoint, ready.replay ?? null);
  }

  command(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    return this.peer.command(cmd);
  }

  /** Publishes one batch and returns its sequence number; `drop` loses it on the wire (replay still has it). */
  async publish(events: PublisherEvent[], opts: { drop?: boolean; dpRank?: number } = {}): Promise<number> {
    const reply = await this.command({
      op: 'publish',
      events,
      drop: opts.drop ?? false,
      ...(opts.dpRank !== undefined ? { dp_rank: opts.dpRank } : {}),
    });
    return reply.seq as number;
  }

  async garbage(kind: 'frames' | 'topic' | 'seq' | 'payload' | 'truncated'): Promise<void> {
    await this.command({ op: 'garbage', kind });
  }

  async restart(): Promise<void> {
    await this.command({ op: 'restart' });
  }

  async stop(): Promise<void> {
    await this.peer.stop(3000);
  }
}

export function stored(
  hashes: bigint[],
  parent: bigint | null,
  tokens?: number[],
  blockSize = 4,
  extra: Record<string, unknown> = {},
): PublisherEvent {
  return {
    type: 'BlockStored',
    block_hashes: hashes,
    parent_block_hash: parent,
    token_ids: tokens ?? Array.from({ length: hashes.length * blockSize }, (_, i) => 500 + i),
    block_size: blockSize,
    medium: 'GPU',
    ...extra,
  };
}

export function removed(hashes: bigint[], medium: string | null = 'GPU'): PublisherEvent {
  return { type: 'BlockRemoved', block_hashes: hashes, medium };
}

export const cleared: PublisherEvent = { type: 'AllBlocksCleared' };
