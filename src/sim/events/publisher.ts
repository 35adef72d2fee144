// vLLM's ZmqEventPublisher for one simulated pod: a PUB socket that binds when the endpoint has a
// wildcard (or is ipc/inproc) and connects otherwise, multipart messages (topic, 8-byte big-endian
// sequence number, msgpack payload), a bounded replay buffer served on a ROUTER socket (request:
// the first wanted sequence number; answer: every buffered batch from it, then an end marker with
// sequence -1), and injectable faults: a stalled publisher and dropped batches.
//
// In connect mode the first batches wait for the subscriber. A PUB sends a message only to peers whose
// subscription it has received, and a connecting PUB receives a bound SUB's subscription only after
// the handshake and once the SUB's owner thread next calls into its socket (libzmq attaches a bound
// socket's new connection in that thread): until then everything published is dropped, batch 0
// first. vLLM has the same race;
// the simulator closes it with an XPUB socket, which reports subscriptions, and holds batches (at most
// as many as its replay buffer keeps) until the subscription for its topic has arrived. After that, as
// in vLLM, a subscriber that reconnects misses what is sent meanwhile and recovers it by replay.

import * as zmq from 'zeromq';
import type { Logger } from '../../common/log.ts';
import { END_OF_REPLAY, sequenceFrame } from '../../vllm/events/topic.ts';

export interface PublisherOptions {
  endpoint: string;
  replayEndpoint?: string | null;
  topic: string;
  /** Batches kept for replay (vLLM's buffer_steps). */
  bufferSteps?: number;
  /** PUB high-water mark (vLLM's hwm). */
  hwm?: number;
  /**
   * Batches queued while the socket is busy or stalled before new ones go to replay only (vLLM's
   * max_queue_size). In connect mode, before the subscriber has subscribed, at most bufferSteps are
   * held (the oldest give way).
   */
  maxQueueSize?: number;
  log: Logger;
}

export interface PublisherFaults {
  /** Probability that a batch is sequenced and buffered for replay but never sent on PUB. */
  dropRate: number;
  /** Wall-clock ms timestamp until which nothing is sent (batches queue up). */
  stalledUntilMs: number;
}

export interface PublisherStats {
  published: number;
  dropped: number;
  queueOverflow: number;
  /** Connect mode: batches that aged out of the replay buffer while held for a subscriber that had not subscribed. */
  unsubscribed: number;
  replayRequests: number;
}

/** Whether vLLM would bind (rather than connect) this endpoint. */
export function isBindEndpoint(endpoint: string): boolean {
  return endpoint.includes('*') || endpoint.includes('::') || endpoint.startsWith('ipc://') || endpoint.startsWith('inproc://');
}

export class KvEventPublisher {
  readonly faults: PublisherFaults = { dropRate: 0, stalledUntilMs: 0 };
  readonly stats: PublisherStats = { published: 0, dropped: 0, queueOverflow: 0, unsubscribed: 0, replayRequests: 0 };
  private readonly options: PublisherOptions;
  private readonly pub: zmq.Publisher | zmq.XPublisher;
  private readonly replay: zmq.Router | null;
  /** False in connect mode until the subscriber's subscription to the topic has arrived: batches wait in the queue. */
  private subscribed: boolean;
  private subscriptionLoop: Promise<void> | null = null;
  private readonly topic: Buffer;
  private readonly buffer: Array<{ seq: number; payload: Uint8Array }> = [];
  private readonly queue: Array<{ seq: number; payload: Uint8Array; drop: boolean }> = [];
  private nextSeq = 0;
  private sending = false;
  private closed = false;
  private stallTimer: NodeJS.Timeout | null = null;
  private replayLoop: Promise<void> | null = null;
  private readonly random: () => number;

  constructor(options: PublisherOptions, random: () => number = Math.random) {
    this.options = options;
    this.random = random;
    this.topic = Buffer.from(options.topic, 'utf8');
    const connect = !isBindEndpoint(options.endpoint);
    const pubOptions = { sendHighWaterMark: options.hwm ?? 100_000, linger: 0 };
    this.pub = connect ? new zmq.XPublisher(pubOptions) : new zmq.Publisher(pubOptions);
    this.subscribed = !connect;
    const buffer = options.bufferSteps ?? 10_000;
    this.replay = options.replayEndpoint ? new zmq.Router({ sendHighWaterMark: 2 * (buffer + 1), linger: 0 }) : null;
  }

  /** Binds or connects the sockets; resolves once they are usable. */
  async start(): Promise<void> {
    const { endpoint, replayEndpoint, log } = this.options;
    if (isBindEndpoint(endpoint)) {
      await this.pub.bind(endpoint);
    } else {
      this.pub.connect(endpoint);
      this.subscriptionLoop = this.awaitSubscriber(this.pub as zmq.XPublisher);
    }
    if (this.replay && replayEndpoint) {
      await this.replay.bind(replayEndpoint);
      this.replayLoop = this.serveReplay();
    }
    log.info('kv event publisher started', {
      endpoint: this.endpoint,
      mode: isBindEndpoint(endpoint) ? 'bind' : 'connect',
      replayEndpoint: this.replayEndpoint,
      topic: this.options.topic,
    });
  }

  /** The PUB endpoint: as bound (a wildcard or port 0 resolved to the kernel's pick) in bind mode, else the one connected to. */
  get endpoint(): string {
    return (isBindEndpoint(this.options.endpoint) ? this.pub.lastEndpoint : null) ?? this.options.endpoint;
  }

  /** The replay ROUTER's endpoint as bound, or null without one. */
  get replayEndpoint(): string | null {
    return this.replay ? (this.replay.lastEndpoint ?? this.options.replayEndpoint ?? null) : null;
  }

  /** Sequences a batch payload and queues it for sending; never blocks the engine. */
  publish(payload: Uint8Array): void {
    if (this.closed) return;
    const seq = this.nextSeq++;
    const bufferSteps = this.options.bufferSteps ?? 10_000;
    this.buffer.push({ seq, payload });
    if (this.buffer.length > bufferSteps) this.buffer.shift();
    // Held for a subscriber that has not subscribed: keep no more than the replay buffer keeps (the
    // payloads are shared with it), so a pod whose indexer never comes costs no extra memory.
    if (!this.subscribed && this.queue.length >= bufferSteps) {
      this.queue.shift();
      this.stats.unsubscribed++;
    }
    if (this.queue.length >= (this.options.maxQueueSize ?? 100_000)) {
      this.stats.queueOverflow++;
      this.options.log.limited('publisher-queue-full', 'warn', 'kv event queue full, batch only available by replay', { seq });
      return;
    }
    this.queue.push({ seq, payload, drop: this.faults.dropRate > 0 && this.random() < this.faults.dropRate });
    void this.drain();
  }

  /** Stops sending for `ms` wall-clock milliseconds; batches queue up and go out afterwards in order. */
  stall(ms: number): void {
    this.faults.stalledUntilMs = Date.now() + ms;
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = setTimeout(() => {
      this.stallTimer = null;
      void this.drain();
    }, ms);
    this.stallTimer.unref();
  }

  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  private async drain(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    try {
      while (this.queue.length > 0 && !this.closed && this.subscribed && Date.now() >= this.faults.stalledUntilMs) {
        const item = this.queue.shift()!;
        if (item.drop) {
          this.stats.dropped++;
          continue;
        }
        await this.pub.send([this.topic, sequenceFrame(item.seq), item.payload]);
        this.stats.published++;
      }
    } catch (err) {
      if (!this.closed) this.options.log.limited('publisher-send', 'error', 'kv event send failed', { err });
    } finally {
      this.sending = false;
    }
  }

  /**
   * Connect mode: reads the subscriptions the XPUB socket reports and, at the first one whose prefix
   * matches the topic, releases the held batches. Keeps reading afterwards, so the socket's queue of
   * reported subscriptions (one per subscriber that reconnects) never grows.
   */
  private async awaitSubscriber(xpub: zmq.XPublisher): Promise<void> {
    try {
      for await (const [frame] of xpub) {
        if (this.subscribed || !frame || frame[0] !== 1) continue;
        const prefix = frame.subarray(1);
        if (prefix.length > this.topic.length || !this.topic.subarray(0, prefix.length).equals(prefix)) continue;
        this.subscribed = true;
        this.options.log.info('kv event subscriber subscribed, sending held batches', {
          endpoint: this.options.endpoint,
          held: this.queue.length,
        });
        void this.drain();
      }
    } catch (err) {
      if (!this.closed) this.options.log.error('kv event subscription watch failed', { err });
    }
  }

  private async serveReplay(): Promise<void> {
    const router = this.replay!;
    try {
      for await (const frames of router) {
        if (frames.length !== 3) {
          this.options.log.limited('replay-bad-request', 'warn', 'invalid replay request: expected [identity, empty, 8-byte seq]', {
            frames: frames.length,
          });
          continue;
        }
        const [identity, , startFrame] = frames as [Buffer, Buffer, Buffer];
        this.stats.replayRequests++;
        const start = startFrame.length === 8 ? startFrame.readBigUInt64BE() : 0n;
        for (const { seq, payload } of [...this.buffer]) {
          if (BigInt(seq) >= start) await router.send([identity, '', this.topic, sequenceFrame(seq), payload]);
        }
        await router.send([identity, '', '', sequenceFrame(END_OF_REPLAY), '']);
      }
    } catch (err) {
      if (!this.closed) this.options.log.error('replay socket failed', { err });
    }
  }

  /** Sends what is queued (bounded by `flushMs`), then closes both sockets. */
  async close(flushMs = 1000): Promise<void> {
    const deadline = Date.now() + flushMs;
    this.faults.stalledUntilMs = 0;
    void this.drain();
    // Batches held for a subscriber that never subscribed have nowhere to go: do not wait for them.
    while ((this.queue.length > 0 || this.sending) && this.subscribed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    this.closed = true;
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.pub.close();
    this.replay?.close();
    await this.replayLoop;
    await this.subscriptionLoop;
  }
}
