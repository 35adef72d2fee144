// Test-only helpers shared by the ingestion unit tests and e2e tests: a sink that records what it is
// told and keeps each source's blocks with their parents, and an in-process vLLM-style publisher
// (PUB + replay ROUTER over real ZMQ sockets). Polling lives in test/support/until.ts.

import { encode } from '@msgpack/msgpack';
import { Publisher, Router } from 'zeromq';
import { sourceKey, type EventSource, type KvEventSink } from '../types.ts';
import { type EventBatch } from '../../vllm/events/types.ts';
import { parseSequenceFrame, sequenceFrame } from '../../vllm/events/topic.ts';

export type SinkRecord =
  | { op: 'apply'; source: string; model: string; ts: number; events: string[] }
  | { op: 'reset'; source: string }
  | { op: 'forget'; source: string };

/** Records every call and keeps, per source, block hash -> parent hash (null for a root). */
export class RecordingSink implements KvEventSink {
  readonly records: SinkRecord[] = [];
  readonly blocks = new Map<string, Map<bigint, bigint | null>>();

  apply(source: EventSource, batch: EventBatch): void {
    const key = sourceKey(source);
    this.records.push({
      op: 'apply',
      source: key,
      model: source.model,
      ts: batch.ts,
      events: batch.events.map((e) => (e.type === 'AllBlocksCleared' ? e.type : `${e.type}:${Array.from(e.blockHashes).join(',')}`)),
    });
    let blocks = this.blocks.get(key);
    if (!blocks) this.blocks.set(key, (blocks = new Map()));
    for (const e of batch.events) {
      if (e.type === 'BlockStored') {
        let parent = e.parentBlockHash;
        for (const h of e.blockHashes) {
          blocks.set(h, parent);
          parent = h;
        }
      } else if (e.type === 'BlockRemoved') {
        for (const h of e.blockHashes) blocks.delete(h);
      } else {
        blocks.clear();
      }
    }
  }

  resetSource(source: EventSource): void {
    const key = sourceKey(source);
    this.records.push({ op: 'reset', source: key });
    this.blocks.delete(key);
  }

  forgetSource(source: EventSource): void {
    const key = sourceKey(source);
    this.records.push({ op: 'forget', source: key });
    this.blocks.delete(key);
  }

  /** Hashes from `leaf` up to its root, following parents; stops at an unknown parent. */
  chain(source: string, leaf: bigint): bigint[] {
    const blocks = this.blocks.get(source);
    const out: bigint[] = [];
    let h: bigint | null | undefined = leaf;
    while (h !== null && h !== undefined && blocks?.has(h)) {
      out.push(h);
      h = blocks.get(h);
    }
    return out;
  }

  applied(source: string): number {
    return this.records.filter((r) => r.op === 'apply' && r.source === source).length;
  }

  resets(source: string): number {
    return this.records.filter((r) => r.op === 'reset' && r.source === source).length;
  }
}

/** An event as current vLLM sends it: a map tagged by "type" (block hashes as bigint). */
export type WireEvent = Record<string, unknown> & { type: string };

export function storedEvent(hashes: bigint[], parent: bigint | null, blockSize = 4, extra: Record<string, unknown> = {}): WireEvent {
  return {
    type: 'BlockStored',
    block_hashes: hashes,
    parent_block_hash: parent,
    token_ids: Array.from({ length: hashes.length * blockSize }, (_, i) => 100 + i),
    block_size: blockSize,
    lora_id: null,
    medium: 'GPU',
    lora_name: null,
    ...extra,
  };
}

export function encodeBatch(events: WireEvent[], dpRank: number | null = 0, ts = Date.now() / 1000): Uint8Array {
  return encode(dpRank === null ? [ts, events] : [ts, events, dpRank], { useBigInt64: true });
}

export interface TestPublisherOptions {
  topic: string;
  /** Where the PUB socket connects (central mode) or binds (per-pod mode). */
  connect?: string;
  bind?: string;
  /** Binds a replay ROUTER here. */
  replayBind?: string;
  /** vLLM 0.33 replies [topic, seq, payload]; older vLLM and SGLang [seq, payload]. */
  replyForm?: 'topic' | 'legacy';
  /** Batches kept for replay. */
  bufferSteps?: number;
}

/** A vLLM-style publisher in this process: numbered batches on PUB, a replay buffer on ROUTER. */
export class TestPublisher {
  readonly pub = new Publisher({ linger: 0 });
  readonly router: Router | undefined;
  seq = 0;
  readonly buffer: Array<{ seq: number; payload: Uint8Array }> = [];
  private readonly options: TestPublisherOptions;

  private constructor(options: TestPublisherOptions) {
    this.options = options;
    if (options.replayBind) this.router = new Router({ linger: 0 });
  }

  static async start(options: TestPublisherOptions): Promise<TestPublisher> {
    const p = new TestPublisher(options);
    if (options.bind) await p.pub.bind(options.bind);
    if (options.connect) p.pub.connect(options.connect);
    if (p.router && options.replayBind) {
      await p.router.bind(options.replayBind);
      void p.serveReplay();
    }
    return p;
  }

  /** Publishes a batch; with `drop` it is numbered and buffered but never sent, as if lost. */
  async publish(events: WireEvent[], opts: { dpRank?: number | null; drop?: boolean } = {}): Promise<number> {
    const seq = this.seq++;
    const payload = encodeBatch(events, opts.dpRank === undefined ? 0 : opts.dpRank);
    this.buffer.push({ seq, payload });
    const max = this.options.bufferSteps ?? 10_000;
    if (this.buffer.length > max) this.buffer.shift();
    if (!opts.drop) await this.pub.send([this.options.topic, sequenceFrame(seq), payload]);
    return seq;
  }

  async raw(frames: Array<Uint8Array | string>): Promise<void> {
    await this.pub.send(frames);
  }

  private async serveReplay(): Promise<void> {
    const router = this.router!;
    try {
      for await (const frames of router) {
        const [id, , start] = frames as [Buffer, Buffer, Buffer];
        const from = parseSequenceFrame(start);
        for (const b of this.buffer) {
          if (b.seq < from) continue;
          const body =
            this.options.replyForm === 'legacy' ? [sequenceFrame(b.seq), b.payload] : [this.options.topic, sequenceFrame(b.seq), b.payload];
          await router.send([id, '', ...body]);
        }
        const end = Buffer.alloc(8, 0xff);
        await router.send(this.options.replyForm === 'legacy' ? [id, '', end, ''] : [id, '', '', end, '']);
      }
    } catch {
      // The socket was closed: the publisher is done.
    }
  }

  close(): void {
    this.pub.close();
    this.router?.close();
  }
}
