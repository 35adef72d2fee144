// The client side of vLLM's KV-event replay protocol: a DEALER connects to the publisher's ROUTER,
// sends ["", start seq as 8-byte big-endian], and receives the buffered batches from that number on,
// then an end marker with seq -1. Replies come as ["", seq, payload] (older vLLM, SGLang) or
// ["", topic, seq, payload] (vLLM 0.33); the empty delimiter is tolerated either way.

import { Dealer } from 'zeromq';
import { END_OF_REPLAY, parseSequenceFrame, sequenceFrame } from '../../vllm/events/topic.ts';

export interface ReplayedBatch {
  seq: number;
  payload: Uint8Array;
}

export class ReplayError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReplayError';
  }
}

export interface ReplayOptions {
  /** Longest wait for the connection and for each reply. */
  timeoutMs: number;
  /** Lets the caller close the socket early (shutdown, pod removed). */
  onSocket?: (socket: Dealer) => void;
}

/** Parses one reply, or returns null for the end marker. */
export function parseReplayReply(frames: Uint8Array[]): ReplayedBatch | null {
  let parts = frames;
  if (parts.length >= 3 && parts[0]!.length === 0) parts = parts.slice(1);
  let seqFrame: Uint8Array;
  let payload: Uint8Array;
  if (parts.length === 2) [seqFrame, payload] = parts as [Uint8Array, Uint8Array];
  else if (parts.length === 3) [, seqFrame, payload] = parts as [Uint8Array, Uint8Array, Uint8Array];
  else throw new ReplayError(`replay reply has ${frames.length} frames: expected ["", seq, payload] or ["", topic, seq, payload]`);
  let seq: number;
  try {
    seq = parseSequenceFrame(seqFrame);
  } catch (err) {
    throw new ReplayError(`replay reply: ${(err as Error).message}`);
  }
  return seq === END_OF_REPLAY ? null : { seq, payload };
}

/**
 * Streams the batches a publisher still buffers from `fromSeq` on, ending at its end marker.
 * @throws ReplayError on a timeout or a reply that does not follow the protocol.
 */
export async function* fetchReplay(endpoint: string, fromSeq: number, options: ReplayOptions): AsyncGenerator<ReplayedBatch> {
  const dealer = new Dealer({ linger: 0, sendTimeout: options.timeoutMs, receiveTimeout: options.timeoutMs });
  options.onSocket?.(dealer);
  try {
    dealer.connect(endpoint);
    try {
      await dealer.send([Buffer.alloc(0), sequenceFrame(fromSeq)]);
    } catch (err) {
      throw new ReplayError(`replay request to ${endpoint} failed: ${(err as Error).message}`);
    }
    for (;;) {
      let frames: Buffer[];
      try {
        frames = await dealer.receive();
      } catch (err) {
        const code = (err as { code?: string }).code;
        throw new ReplayError(
          code === 'EAGAIN'
            ? `no replay reply from ${endpoint} within ${options.timeoutMs} ms`
            : `replay from ${endpoint} failed: ${(err as Error).message}`,
        );
      }
      const reply = parseReplayReply(frames);
      if (!reply) return;
      yield reply;
    }
  } finally {
    if (!dealer.closed) dealer.close();
  }
}
