// The simulator and the indexer must turn the same chat (with tools) into the same token ids, or the
// indexer's scores would not match what the pod caches: both components, checked against each other.

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ChatTool } from '../src/common/chat.ts';
import { silentLogger } from '../src/common/log.ts';
import { BlockIndex } from '../src/indexer/index/block-index.ts';
import { parseScoreBody } from '../src/indexer/scoring/request.ts';
import { IndexerService } from '../src/indexer/scoring/service.ts';
import { parseSimPodConfig } from '../src/sim/config.ts';
import { startSimPod, type SimPod } from '../src/sim/pod.ts';
import { loadSimTokenizer, type SimTokenizer } from '../src/sim/tokenizer.ts';
import { TokenizerSet } from '../src/tokenize/tokenizers.ts';

const MODEL = 'm';

async function request(port: number, method: string, route: string, body?: string) {
  const res = await fetch(`http://127.0.0.1:${port}${route}`, { method, headers: { 'content-type': 'application/json' }, body });
  return { status: res.status, headers: res.headers, json: (await res.json()) as any };
}

const post = (port: number, route: string, body: unknown) => request(port, 'POST', route, JSON.stringify(body));

/** A pod on a kernel-picked port (read it from `pod.port`). */
function startPod(podId: string, tokenizer: SimTokenizer, extra: Record<string, unknown> = {}): Promise<SimPod> {
  return startSimPod(parseSimPodConfig({ podId, model: MODEL, port: 0, timeScale: 1000, ...extra }), { tokenizer, log: silentLogger });
}

describe('sim chat with tools', () => {
  let tokenizer: SimTokenizer;
  let pod: SimPod;
  let indexer: IndexerService;
  let indexerTokenizers: TokenizerSet;
  const tools: ChatTool[] = [
    {
      type: 'function',
      function: {
        name: 'get_weather',
        description: 'Current weather for a city',
        parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
      },
    },
    { type: 'function', function: { name: 'list_pods' } },
  ];
  const messages = [
    { role: 'system', content: 'You route requests to the pod that has the prompt cached.' },
    { role: 'user', content: 'What is the weather in Lisbon, and which pods are up? Use the tools you have.' },
  ];

  beforeAll(async () => {
    tokenizer = await loadSimTokenizer(MODEL, 'npm:qwen3', { workers: 0 });
    pod = await startPod('p-tools', tokenizer);
    indexerTokenizers = new TokenizerSet({ sources: { [MODEL]: 'npm:qwen3' } });
    await indexerTokenizers.load();
    indexer = new IndexerService({
      index: new BlockIndex({ blockSize: 16, tierWeights: { gpu: 1, cpu: 0.25 } }),
      tokenizers: indexerTokenizers,
      log: silentLogger,
    });
  });
  afterAll(async () => {
    await pod.close();
    await tokenizer.close();
    await indexerTokenizers.close();
  });

  it('renders tools into the Qwen3 prompt as vLLM dumps them (null description and parameters kept, in field order)', async () => {
    const withTools = await indexer.tokenize(parseScoreBody({ model: MODEL, messages, tools }));
    expect(withTools.rendered).toContain(
      '<tools>\n{"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city", "parameters": {"type": "object"',
    );
    expect(withTools.rendered).toContain(
      '{"type": "function", "function": {"name": "list_pods", "description": null, "parameters": null}}\n</tools>',
    );
    const without = await indexer.tokenize(parseScoreBody({ model: MODEL, messages }));
    expect(without.rendered).not.toContain('<tools>');
  });

  it('tokenizes a tool-using chat to the same token ids in the sim as in the indexer', async () => {
    const indexed = await indexer.tokenize(parseScoreBody({ model: MODEL, messages, tools }));
    const chat = await post(pod.port, '/v1/chat/completions', { model: MODEL, messages, tools, max_tokens: 1 });
    expect(chat.status).toBe(200);
    expect(chat.json.usage.prompt_tokens).toBe(indexed.tokens.length);
    // The indexer's ids, sent as a token prompt, hit every full block the chat cached: same ids, same hashes.
    const replay = await post(pod.port, '/v1/completions', { model: MODEL, prompt: indexed.tokens, max_tokens: 1 });
    expect(replay.json.usage.prompt_tokens_details.cached_tokens).toBe(Math.floor((indexed.tokens.length - 1) / 16) * 16);
  });

  it('rejects a tool without a function name, naming the field', async () => {
    const r = await post(pod.port, '/v1/chat/completions', { model: MODEL, messages, tools: [{ type: 'function', function: {} }] });
    expect(r.status).toBe(400);
    expect(r.json.error.param).toBe('tools.0.function.name');
  });
});
