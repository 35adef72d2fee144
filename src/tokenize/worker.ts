// A tokenization worker thread: hosts a TokenizerSet so that tokenizing a long cold prompt (tens of
// ms) never blocks the event loop of the process using it. Speaks the small protocol in pool-protocol.ts.

import { parentPort, workerData } from 'node:worker_threads';
import { TokenizeInputError } from './model-tokenizer.ts';
import type { WorkerReply, WorkerRequest, WorkerSetup } from './pool-protocol.ts';
import { TokenizerSet, UnknownModelError } from './tokenizers.ts';

const port = parentPort!;
const setup = workerData as WorkerSetup;
const tokenizers = new TokenizerSet({
  sources: setup.sources,
  defaultSource: setup.defaultSource,
  cacheMaxBytes: setup.cacheMaxBytes,
  harmonyStartDate: setup.harmonyStartDate,
});

try {
  await tokenizers.load();
  port.postMessage({ type: 'ready', models: tokenizers.models } satisfies WorkerReply);
} catch (err) {
  port.postMessage({ type: 'failed', message: (err as Error).message } satisfies WorkerReply);
}

// Async only when a fallback tokenizer loads on first use; replies carry the request id, so order does not matter.
port.on('message', async (req: WorkerRequest) => {
  let reply: WorkerReply;
  try {
    const out = await tokenizers.tokenize(req.model, req.input);
    reply = { type: 'result', id: req.id, out, cacheBytes: tokenizers.cacheBytes() };
  } catch (err) {
    const kind = err instanceof UnknownModelError ? 'unknown-model' : err instanceof TokenizeInputError ? 'input' : 'internal';
    reply = { type: 'error', id: req.id, kind, message: (err as Error).message };
  }
  port.postMessage(reply);
});
