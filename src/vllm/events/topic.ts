// ZMQ topic and sequence-frame parsing for KV-event messages: `kv@<pod-id>@<model>` topics and the
// 8-byte big-endian sequence number vLLM puts in the second frame.

/** The pod and model a message belongs to, from its topic. */
export interface TopicParts {
  podId: string;
  model: string;
}

export class TopicError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TopicError';
  }
}

const PREFIX = 'kv@';
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Splits `kv@<pod-id>@<model>`. The pod id runs from after `kv@` to the next `@` (so it cannot
 * contain `@`; host:port and bracketed IPv6 such as `[fd00::1]:8000` are fine); the model is
 * everything after it, and may itself contain `/` and `@` (`org/model@rev`). Both must be non-empty.
 * @throws TopicError saying which part is wrong.
 */
export function parseTopic(topic: string): TopicParts {
  if (!topic.startsWith(PREFIX))
    throw new TopicError(`topic "${clip(topic)}" does not start with "${PREFIX}": expected kv@<pod-id>@<model>`);
  const at = topic.indexOf('@', PREFIX.length);
  if (at < 0) throw new TopicError(`topic "${clip(topic)}" has no "@" after the pod id: expected kv@<pod-id>@<model>`);
  const podId = topic.slice(PREFIX.length, at);
  const model = topic.slice(at + 1);
  if (podId.length === 0) throw new TopicError(`topic "${clip(topic)}" has an empty pod id: expected kv@<pod-id>@<model>`);
  if (model.length === 0) throw new TopicError(`topic "${clip(topic)}" has an empty model name: expected kv@<pod-id>@<model>`);
  return { podId, model };
}

/** parseTopic over the raw topic frame, which must be UTF-8. */
export function parseTopicFrame(frame: Uint8Array): TopicParts {
  let text: string;
  try {
    text = utf8.decode(frame);
  } catch {
    throw new TopicError(`topic frame of ${frame.length} bytes is not valid UTF-8`);
  }
  return parseTopic(text);
}

/** The end-of-replay marker vLLM sends in the sequence frame: -1 as a signed 64-bit integer. */
export const END_OF_REPLAY = -1;

/**
 * Reads an 8-byte big-endian sequence frame as a signed integer (vLLM writes counters with
 * `to_bytes(8, "big")` and the replay end marker as signed -1).
 * @throws TopicError when the frame is not 8 bytes or the value is beyond 2^53.
 */
export function parseSequenceFrame(frame: Uint8Array): number {
  if (frame.length !== 8) throw new TopicError(`sequence frame has ${frame.length} bytes: expected 8 (big-endian int64)`);
  const view = new DataView(frame.buffer, frame.byteOffset, 8);
  const value = view.getBigInt64(0);
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < -1n) throw new TopicError(`sequence number ${value} is out of range`);
  return Number(value);
}

/** A sequence number as the 8-byte big-endian frame a replay request carries. */
export function sequenceFrame(seq: number): Buffer {
  const buf = Buffer.alloc(8);
  buf.writeBigInt64BE(BigInt(seq));
  return buf;
}

/**
 * The endpoint data-parallel rank `rank` uses given rank 0's, exactly as vLLM's
 * `offset_endpoint_port`: an endpoint containing `inproc` gets `_dp<rank>` appended; one containing
 * `tcp` has the port after its last `:` offset by the rank (port 0 stays 0, for the OS to pick);
 * anything else (`ipc://`) is refused, as vLLM refuses it, because ranks would collide on one path.
 * @throws Error naming the endpoint when it has neither form or its port is not a number.
 */
export function endpointForRank(endpoint: string, rank: number): string {
  if (endpoint === '' || rank === 0) return endpoint;
  if (endpoint.includes('inproc')) return `${endpoint}_dp${rank}`;
  if (!endpoint.includes('tcp'))
    throw new Error(`endpoint "${endpoint}" cannot be offset for data-parallel rank ${rank}: expected tcp://HOST:PORT or inproc://NAME`);
  const colon = endpoint.lastIndexOf(':');
  if (colon < 0) return endpoint;
  const portText = endpoint.slice(colon + 1);
  if (!/^\d+$/.test(portText))
    throw new Error(`endpoint "${endpoint}" has port "${portText}": expected a number to offset by data-parallel rank ${rank}`);
  const port = Number(portText);
  return port === 0 ? endpoint : `${endpoint.slice(0, colon)}:${port + rank}`;
}

/**
 * Rank 0's replay endpoint of a pod known only from its topic (central mode): `{pod}` becomes the
 * topic's pod id, `{host}` the pod id without a trailing `:port` (brackets of an IPv6 address kept).
 * Other ranks then offset the port by endpointForRank, as vLLM binds them.
 */
export function replayEndpointFromTemplate(template: string, podId: string): string {
  const host = /^(\[[^\]]*\]|[^:]*):\d+$/.exec(podId)?.[1] ?? podId;
  return template.replaceAll('{pod}', podId).replaceAll('{host}', host);
}

function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
