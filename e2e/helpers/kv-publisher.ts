// Drives hack/kv_publisher.py, a vLLM-style KV-event publisher in its own Python process (pyzmq +
// msgspec), through its JSON-lines protocol on stdin/stdout.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface KvPublisherOptions {
  endpoint: string;
  /** Bind the PUB socket (per-pod mode) instead of connecting to the indexer (central mode). */
  bind?: boolean;
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

let pythonPath: string | undefined;
function python(): string {
  pythonPath ??= execFileSync('bash', [path.join(root, 'hack/python-env.sh')], { encoding: 'utf8' }).trim();
  return pythonPath;
}

export class KvPublisherProcess {
  private readonly child: ChildProcess;
  private readonly lines: Interface;
  private readonly pending: Array<(line: string) => void> = [];
  private readonly buffered: string[] = [];
  private stderr = '';

  private constructor(child: ChildProcess) {
    this.child = child;
    this.lines = createInterface({ input: child.stdout! });
    this.lines.on('line', (line) => {
      const waiter = this.pending.shift();
      if (waiter) waiter(line);
      else this.buffered.push(line);
    });
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
  }

  static async start(options: KvPublisherOptions): Promise<KvPublisherProcess> {
    const args = [path.join(root, 'hack/kv_publisher.py'), '--endpoint', options.endpoint, '--topic', options.topic];
    if (options.bind) args.push('--bind');
    if (options.replay) args.push('--replay', options.replay);
    if (options.encoding) args.push('--encoding', options.encoding);
    if (options.replyForm) args.push('--reply-form', options.replyForm);
    if (options.bufferSteps !== undefined) args.push('--buffer-steps', String(options.bufferSteps));
    if (options.dpRank !== undefined) args.push('--dp-rank', String(options.dpRank));
    const p = new KvPublisherProcess(spawn(python(), args, { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] }));
    const ready = JSON.parse(await p.nextLine()) as { ready?: boolean };
    if (!ready.ready) throw new Error(`kv_publisher did not start: ${JSON.stringify(ready)} ${p.stderr}`);
    return p;
  }

  private nextLine(timeoutMs = 10_000): Promise<string> {
    const line = this.buffered.shift();
    if (line !== undefined) return Promise.resolve(line);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`kv_publisher did not answer within ${timeoutMs} ms; stderr: ${this.stderr}`)), timeoutMs);
      this.pending.push((l) => {
        clearTimeout(timer);
        resolve(l);
      });
    });
  }

  async command(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    const text = JSON.stringify(cmd, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
    this.child.stdin!.write(text + '\n');
    const reply = JSON.parse(await this.nextLine()) as Record<string, unknown>;
    if (reply.ok !== true) throw new Error(`kv_publisher rejected ${text}: ${JSON.stringify(reply)}`);
    return reply;
  }

  /** Publishes one batch and returns its sequence number; `drop` loses it on the wire (replay still has it). */
  async publish(events: PublisherEvent[], opts: { drop?: boolean; dpRank?: number } = {}): Promise<number> {
    const reply = await this.command({ op: 'publish', events, drop: opts.drop ?? false, ...(opts.dpRank !== undefined ? { dp_rank: opts.dpRank } : {}) });
    return reply.seq as number;
  }

  async garbage(kind: 'frames' | 'topic' | 'seq' | 'payload' | 'truncated'): Promise<void> {
    await this.command({ op: 'garbage', kind });
  }

  async restart(): Promise<void> {
    await this.command({ op: 'restart' });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin!.end(JSON.stringify({ op: 'quit' }) + '\n');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
    this.lines.close();
  }
}

export function stored(hashes: bigint[], parent: bigint | null, tokens?: number[], blockSize = 4, extra: Record<string, unknown> = {}): PublisherEvent {
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
