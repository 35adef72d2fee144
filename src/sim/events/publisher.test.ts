import { describe, expect, it } from '@jest/globals';
import * as zmq from 'zeromq';
import { silentLogger } from '../../common/log.ts';
import { isBindEndpoint, KvEventPublisher } from './publisher.ts';

async function receive(sub: zmq.Subscriber, n: number, timeoutMs = 5000): Promise<Buffer[][]> {
  const out: Buffer[][] = [];
  sub.receiveTimeout = timeoutMs;
  while (out.length < n) out.push((await sub.receive()) as Buffer[]);
  return out;
}

/** Publishes until the subscriber sees a message (PUB/SUB joins are asynchronous), then drains it. */
async function awaitJoin(pub: KvEventPublisher, sub: zmq.Subscriber): Promise<number> {
  sub.receiveTimeout = 50;
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    pub.publish(Uint8Array.of(0xc0));
    try {
      const [, seq] = (await sub.receive()) as Buffer[];
      return Number(seq!.readBigUInt64BE());
    } catch {
      // not joined yet
    }
  }
  throw new Error('subscriber never joined');
}

describe('KvEventPublisher', () => {
  it('binds wildcard and ipc endpoints and connects to the rest, like vLLM', () => {
    expect(isBindEndpoint('tcp://*:5557')).toBe(true);
    expect(isBindEndpoint('tcp://127.0.0.1:5557')).toBe(false);
    expect(isBindEndpoint('ipc:///tmp/x')).toBe(true);
  });

  it('sends topic, 8-byte big-endian sequence and payload, and replays buffered batches then an end marker', async () => {
    const pub = new KvEventPublisher({ endpoint: 'tcp://127.0.0.1:5711', replayEndpoint: 'tcp://127.0.0.1:5712', topic: 'kv@p@m', bufferSteps: 3, log: silentLogger });
    const sub = new zmq.Subscriber({ linger: 0 });
    await sub.bind('tcp://127.0.0.1:5711');
    sub.subscribe('kv@p@m');
    await pub.start();
    const firstSeq = await awaitJoin(pub, sub);
    for (let i = 0; i < 5; i++) pub.publish(Uint8Array.of(i));
    const msgs = await receive(sub, 5);
    for (const [i, [topic, seq, payload]] of msgs.entries()) {
      expect(topic!.toString()).toBe('kv@p@m');
      expect(seq!.length).toBe(8);
      expect(Number(seq!.readBigUInt64BE())).toBe(firstSeq + 1 + i);
      expect([...payload!]).toEqual([i]);
    }
    const dealer = new zmq.Dealer({ linger: 0, receiveTimeout: 5000 });
    dealer.connect('tcp://127.0.0.1:5712');
    const from = pub.lastSeq - 1;
    const start = Buffer.alloc(8);
    start.writeBigUInt64BE(BigInt(from));
    await dealer.send(['', start]);
    const replies: Buffer[][] = [];
    for (;;) {
      const frames = (await dealer.receive()) as Buffer[];
      replies.push(frames);
      if (frames[1]!.length === 0) break;
    }
    expect(replies.map((f) => Number(f[2]!.readBigInt64BE()))).toEqual([from, from + 1, -1]);
    expect(replies[0]![1]!.toString()).toBe('kv@p@m');
    dealer.close();
    sub.close();
    await pub.close(0);
  }, 20_000);

  it('keeps dropped batches replayable and delivers batches queued during a stall in order', async () => {
    const pub = new KvEventPublisher({ endpoint: 'tcp://127.0.0.1:5713', topic: 't', log: silentLogger });
    const sub = new zmq.Subscriber({ linger: 0 });
    await sub.bind('tcp://127.0.0.1:5713');
    sub.subscribe();
    await pub.start();
    const base = await awaitJoin(pub, sub);
    pub.faults.dropRate = 1;
    pub.publish(Uint8Array.of(1));
    pub.faults.dropRate = 0;
    pub.stall(200);
    pub.publish(Uint8Array.of(2));
    pub.publish(Uint8Array.of(3));
    const msgs = await receive(sub, 2);
    expect(msgs.map((m) => Number(m[1]!.readBigUInt64BE()) - base)).toEqual([2, 3]);
    expect(pub.stats.dropped).toBe(1);
    sub.close();
    await pub.close(0);
  }, 20_000);
});
