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

/** A SUB bound on a kernel-picked port, subscribed to `topic`, as a central indexer binds it. */
async function boundSubscriber(topic?: string): Promise<{ sub: zmq.Subscriber; endpoint: string }> {
  const sub = new zmq.Subscriber({ linger: 0 });
  await sub.bind('tcp://127.0.0.1:0');
  if (topic === undefined) sub.subscribe();
  else sub.subscribe(topic);
  return { sub, endpoint: sub.lastEndpoint! };
}

const seqOf = (msg: Buffer[]) => Number(msg[1]!.readBigUInt64BE());

describe('KvEventPublisher', () => {
  it('binds wildcard and ipc endpoints and connects to the rest, like vLLM', () => {
    expect(isBindEndpoint('tcp://*:5557')).toBe(true);
    expect(isBindEndpoint('tcp://127.0.0.1:5557')).toBe(false);
    expect(isBindEndpoint('ipc:///tmp/x')).toBe(true);
  });

  it('sends topic, 8-byte big-endian sequence and payload, and replays buffered batches then an end marker', async () => {
    const { sub, endpoint } = await boundSubscriber('kv@p@m');
    const pub = new KvEventPublisher({ endpoint, replayEndpoint: 'tcp://127.0.0.1:0', topic: 'kv@p@m', bufferSteps: 3, log: silentLogger });
    await pub.start();
    // One batch first: until the subscriber has joined, only bufferSteps (3) batches are held.
    pub.publish(Uint8Array.of(0));
    const msgs = await receive(sub, 1);
    for (let i = 1; i < 5; i++) pub.publish(Uint8Array.of(i));
    msgs.push(...(await receive(sub, 4)));
    for (const [i, [topic, seq, payload]] of msgs.entries()) {
      expect(topic!.toString()).toBe('kv@p@m');
      expect(seq!.length).toBe(8);
      expect(Number(seq!.readBigUInt64BE())).toBe(i);
      expect([...payload!]).toEqual([i]);
    }
    const dealer = new zmq.Dealer({ linger: 0, receiveTimeout: 5000 });
    dealer.connect(pub.replayEndpoint!);
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
    const { sub, endpoint } = await boundSubscriber();
    const pub = new KvEventPublisher({ endpoint, topic: 't', log: silentLogger });
    await pub.start();
    pub.publish(Uint8Array.of(0));
    expect(seqOf((await receive(sub, 1))[0]!)).toBe(0);
    pub.faults.dropRate = 1;
    pub.publish(Uint8Array.of(1));
    pub.faults.dropRate = 0;
    pub.stall(200);
    pub.publish(Uint8Array.of(2));
    pub.publish(Uint8Array.of(3));
    const msgs = await receive(sub, 2);
    expect(msgs.map(seqOf)).toEqual([2, 3]);
    expect(pub.stats.dropped).toBe(1);
    sub.close();
    await pub.close(0);
  }, 20_000);

  it('in connect mode holds batches until the bound subscriber has subscribed, then sends them from sequence 0', async () => {
    // The SUB has no receive pending, so libzmq has not yet sent the connecting PUB its subscription:
    // a plain PUB would drop these three batches.
    const { sub, endpoint } = await boundSubscriber('kv@');
    const pub = new KvEventPublisher({ endpoint, topic: 'kv@p@m', log: silentLogger });
    await pub.start();
    for (let i = 0; i < 3; i++) pub.publish(Uint8Array.of(i));
    expect(pub.stats.published).toBe(0);
    const msgs = await receive(sub, 3);
    expect(msgs.map(seqOf)).toEqual([0, 1, 2]);
    expect(msgs.map((m) => [...m[2]!])).toEqual([[0], [1], [2]]);
    expect(pub.stats.published).toBe(3);
    sub.close();
    await pub.close(0);
  }, 20_000);

  it('holds no more batches for a subscriber than the replay buffer keeps, counting those that aged out', async () => {
    const { sub, endpoint } = await boundSubscriber();
    const pub = new KvEventPublisher({ endpoint, topic: 'kv@p@m', bufferSteps: 3, log: silentLogger });
    await pub.start();
    for (let i = 0; i < 5; i++) pub.publish(Uint8Array.of(i));
    expect(pub.stats).toMatchObject({ published: 0, unsubscribed: 2 });
    expect((await receive(sub, 3)).map(seqOf)).toEqual([2, 3, 4]);
    sub.close();
    await pub.close(0);
  }, 20_000);

  it('does not wait at close for batches held for a subscriber that never subscribed', async () => {
    const { sub, endpoint } = await boundSubscriber('someone-else');
    const pub = new KvEventPublisher({ endpoint, topic: 'kv@p@m', log: silentLogger });
    await pub.start();
    pub.publish(Uint8Array.of(1));
    const started = Date.now();
    await pub.close(10_000);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(pub.stats.published).toBe(0);
    sub.close();
  }, 20_000);
});
