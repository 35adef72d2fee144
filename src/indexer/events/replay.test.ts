import { describe, it, expect } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { parseReplayReply, ReplayError } from './replay.ts';
import { decodeEventBatch } from '../../vllm/events/decode.ts';
import { parseSequenceFrame, parseTopicFrame } from '../../vllm/events/topic.ts';

const golden = JSON.parse(readFileSync(new URL('../../vllm/events/testdata/kv-events.json', import.meta.url), 'utf8')) as {
  batches: Array<{ topic: string; seq: number; frames: string[] }>;
  replay: { replies: string[][]; legacyReplies: string[][]; requestSeq: number };
};
const frames = (hexes: string[]) => hexes.map((h) => Uint8Array.from(Buffer.from(h, 'hex')));

describe('parseReplayReply on replies captured from vLLM 0.33 and the older form', () => {
  it.each([
    ['vLLM 0.33 ["", topic, seq, payload]', golden.replay.replies],
    ['older vLLM and SGLang ["", seq, payload]', golden.replay.legacyReplies],
  ])('reads %s up to the end marker', (_name, replies) => {
    const parsed = replies.map((r) => parseReplayReply(frames(r)));
    expect(parsed.at(-1)).toBeNull();
    const batches = parsed.slice(0, -1);
    expect(batches.map((b) => b!.seq)).toEqual(batches.map((_, i) => golden.replay.requestSeq + i));
    for (const b of batches) expect(decodeEventBatch(b!.payload).events.length).toBeGreaterThan(0);
  });

  it('rejects a reply with the wrong number of frames', () => {
    expect(() => parseReplayReply(frames(['', '00', '11', '22', '33']))).toThrow(ReplayError);
    expect(() => parseReplayReply(frames(['', '0001', 'aa']))).toThrow(/2 bytes: expected 8/);
  });
});

describe('golden ZMQ frames', () => {
  it('parses the topic and sequence frames of every golden message', () => {
    for (const b of golden.batches) {
      const [topic, seq] = frames(b.frames) as [Uint8Array, Uint8Array];
      expect(parseSequenceFrame(seq)).toBe(b.seq);
      const parts = parseTopicFrame(topic);
      expect(`kv@${parts.podId}@${parts.model}`).toBe(b.topic);
    }
  });
});
