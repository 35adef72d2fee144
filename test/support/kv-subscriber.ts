// Drives hack/kv_subscriber.py, a pyzmq SUB socket in its own Python process (libzmq as vLLM's tooling
// and llm-d's consumers use it), through its JSON-lines protocol on stdin/stdout. Between commands
// the Python side does not touch its socket, as a consumer whose thread is busy elsewhere.

import { spawn } from 'node:child_process';
import path from 'node:path';
import { JsonLinesPeer } from './json-lines-peer.ts';
import { peerPython } from './python.ts';
import { repoRoot } from './repo-root.ts';

export interface KvSubscriberOptions {
  /** Bind here (port 0 allowed: read `endpoint`); publishers connect to it, as to a central indexer. */
  bind?: string;
  /** Or connect here, to a publisher that binds. */
  connect?: string;
  /** Subscription prefix; default everything. */
  topic?: string;
}

/** One message as received: the topic frame, the 8-byte big-endian sequence number, the payload bytes. */
export interface ReceivedBatch {
  topic: string;
  seq: number;
  payload: Buffer;
}

export class KvSubscriberProcess {
  /** The endpoint the SUB socket bound (port 0 resolved) or connected to. */
  readonly endpoint: string;
  /** The libzmq version pyzmq runs on. */
  readonly zmqVersion: string;
  private readonly peer: JsonLinesPeer;

  private constructor(peer: JsonLinesPeer, endpoint: string, zmqVersion: string) {
    this.peer = peer;
    this.endpoint = endpoint;
    this.zmqVersion = zmqVersion;
  }

  static async start(options: KvSubscriberOptions): Promise<KvSubscriberProcess> {
    if ((options.bind === undefined) === (options.connect === undefined))
      throw new Error('KvSubscriberProcess.start: give exactly one of bind or connect');
    const args = [
      path.join(repoRoot, 'hack/kv_subscriber.py'),
      ...(options.bind !== undefined ? ['--bind', options.bind] : ['--connect', options.connect!]),
      '--topic',
      options.topic ?? '',
    ];
    const peer = new JsonLinesPeer('kv_subscriber', spawn(peerPython(), args, { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] }));
    const ready = (await peer.next(30_000)) as { ready?: boolean; endpoint?: string; zmq?: string };
    if (!ready.ready || typeof ready.endpoint !== 'string')
      throw new Error(`kv_subscriber did not start: ${JSON.stringify(ready)} ${peer.stderr}`);
    return new KvSubscriberProcess(peer, ready.endpoint, String(ready.zmq));
  }

  /** The next message; rejects naming the wait when none arrives within `timeoutMs`. */
  async receive(timeoutMs = 5_000): Promise<ReceivedBatch> {
    const reply = await this.peer.command({ op: 'recv', timeout_ms: timeoutMs }, timeoutMs + 10_000);
    return { topic: String(reply.topic), seq: Number(reply.seq), payload: Buffer.from(String(reply.payload), 'hex') };
  }

  async stop(): Promise<void> {
    await this.peer.stop(3_000);
  }
}
