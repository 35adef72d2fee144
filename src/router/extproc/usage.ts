// Token usage read from the end of a response as it streams past: OpenAI servers put `usage` at the end
// of a JSON body and in the last SSE data event, so only a bounded tail of the stream is kept, and
// the last complete `"usage": {...}` object in it is parsed once the response ends.

export interface Usage {
  promptTokens?: number;
  completionTokens?: number;
  cachedTokens?: number;
}

/** Enough for the final SSE events (usage chunk, [DONE]) or the end of a JSON body, with room to spare. */
const DEFAULT_TAIL_BYTES = 16 * 1024;

/** The last `tailBytes` bytes of a stream. */
export class StreamTail {
  private tail: Buffer = Buffer.alloc(0);
  private readonly max: number;

  constructor(max = DEFAULT_TAIL_BYTES) {
    this.max = max;
  }

  push(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (bytes.length >= this.max) {
      this.tail = Buffer.from(bytes.subarray(bytes.length - this.max));
      return;
    }
    const keep = Math.min(this.tail.length, this.max - bytes.length);
    this.tail = Buffer.concat([this.tail.subarray(this.tail.length - keep), bytes]);
  }

  text(): string {
    return this.tail.toString('utf8');
  }
}

/** Index just past the JSON object that starts at `open` ('{'), or -1 when it does not close in `text`. */
function objectEnd(text: string, open: number): number {
  let depth = 0;
  let inString = false;
  for (let i = open; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b /* { */) depth++;
    else if (c === 0x7d /* } */ && --depth === 0) return i + 1;
  }
  return -1;
}

function count(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/** The last complete `"usage": {...}` with token counts in `text` (an SSE stream's or a JSON body's tail). */
export function extractUsage(text: string): Usage | null {
  for (let at = text.lastIndexOf('"usage"'); at !== -1; at = at === 0 ? -1 : text.lastIndexOf('"usage"', at - 1)) {
    let i = at + 7;
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (text[i] !== ':') continue;
    i++;
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (text[i] !== '{') continue; // "usage": null in the chunks before the last
    const end = objectEnd(text, i);
    if (end === -1) continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text.slice(i, end));
    } catch {
      continue;
    }
    const u = parsed as {
      prompt_tokens?: unknown;
      completion_tokens?: unknown;
      prompt_tokens_details?: { cached_tokens?: unknown } | null;
    };
    const usage: Usage = {};
    const prompt = count(u.prompt_tokens);
    const completion = count(u.completion_tokens);
    const cached = count(u.prompt_tokens_details?.cached_tokens);
    if (prompt !== undefined) usage.promptTokens = prompt;
    if (completion !== undefined) usage.completionTokens = completion;
    if (cached !== undefined) usage.cachedTokens = cached;
    if (prompt !== undefined || completion !== undefined) return usage;
  }
  return null;
}
