// `kvroute demo`: starts a local indexer and simulated vLLM pods, replays one chat workload under
// round-robin and under cache-aware routing (the indexer's scores), and prints what the pods reported.

import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { createLogger } from '../common/log.ts';
import { fmt, formatTable } from '../common/table.ts';
import { startLocalPool } from '../demo/local-pool.ts';
import { POLICIES, resetCaches, runPhase, type PhaseResult } from '../demo/traffic.ts';
import { DEFAULT_WORKLOAD, buildWorkload } from '../demo/workload.ts';

function positiveInt(flag: string) {
  return (text: string): number => {
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < 1) throw new InvalidArgumentError(`${flag} expects a positive integer, got "${text}"`);
    return n;
  };
}

function positiveNumber(flag: string) {
  return (text: string): number => {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${flag} expects a positive number, got "${text}"`);
    return n;
  };
}

interface DemoFlags {
  pods: number;
  model: string;
  tokenizer: string;
  conversations: number;
  turns: number;
  apps: number;
  concurrency: number;
  kvBlocks: number;
  timeScale: number;
  basePort: number;
  json?: string;
  logDir: string;
}

function printResults(results: PhaseResult[], pods: string[]): void {
  const rows = results.map((r) => [
    r.policy,
    String(r.requests - r.errors),
    `${fmt(100 * r.hitRate)}%`,
    fmt(r.ttftMeanMs),
    fmt(r.ttftP90Ms),
    pods.map((p) => r.requestsPerPod[p] ?? 0).join('/'),
    r.prediction ? `${r.prediction.exact}/${r.prediction.total} exact, ${r.prediction.withinOneBlock} within 1 block` : '-',
  ]);
  process.stdout.write(
    `\n${formatTable(['policy', 'requests', 'prefix-cache hit rate', 'TTFT mean ms', 'TTFT p90 ms', `requests per pod (${pods.join('/')})`, 'indexer prediction vs pod'], rows)}\n`,
  );
  const [rr, ca] = results;
  if (rr && ca && rr.ttftMeanMs > 0) {
    process.stdout.write(
      `\ncache-aware vs round-robin: hit rate ${fmt(100 * rr.hitRate)}% -> ${fmt(100 * ca.hitRate)}%, mean TTFT ${fmt(rr.ttftMeanMs)} -> ${fmt(ca.ttftMeanMs)} ms (simulated)\n`,
    );
  }
}

export function command(): Command {
  return new Command('demo')
    .option('--pods <n>', 'simulated vLLM pods', positiveInt('--pods'), 3)
    .option('--model <name>', 'served model name', 'Qwen/Qwen3-0.6B')
    .option('--tokenizer <source>', 'tokenizer the pods and the indexer share', 'npm:qwen3')
    .option('--conversations <n>', 'chat conversations', positiveInt('--conversations'), DEFAULT_WORKLOAD.conversations)
    .option('--turns <n>', 'turns per conversation', positiveInt('--turns'), DEFAULT_WORKLOAD.turnsPerConversation)
    .option('--apps <n>', 'distinct long system prompts shared by conversations', positiveInt('--apps'), DEFAULT_WORKLOAD.apps)
    .option('--concurrency <n>', 'requests in flight', positiveInt('--concurrency'), 6)
    .option('--kv-blocks <n>', 'KV cache blocks per pod (small enough that the pods must choose what to keep)', positiveInt('--kv-blocks'), 600)
    .option('--time-scale <x>', 'simulated ms per wall ms', positiveNumber('--time-scale'), 20)
    .option('--base-port <n>', 'first of the local ports used (pods, indexer HTTP, gRPC, ZMQ)', positiveInt('--base-port'), 18000)
    .option('--json <file>', 'also write the results as JSON')
    .option('--log-dir <dir>', 'where the child processes log', '.cache/demo')
    .action(async (flags: DemoFlags) => {
      const log = createLogger({ component: 'demo' });
      const blockSize = 16;
      const pool = await startLocalPool(
        {
          model: flags.model,
          tokenizer: flags.tokenizer,
          pods: flags.pods,
          blockSize,
          hashSeed: '0',
          kvBlocksPerPod: flags.kvBlocks,
          timeScale: flags.timeScale,
          simBasePort: flags.basePort,
          indexerHttpPort: flags.basePort + 100,
          indexerGrpcPort: flags.basePort + 101,
          zmqPort: flags.basePort + 102,
          logDir: flags.logDir,
        },
        log,
      );
      const stopOnSignal = () => void pool.stop().then(() => process.exit(130));
      process.once('SIGINT', stopOnSignal);
      process.once('SIGTERM', stopOnSignal);
      try {
        const turns = buildWorkload({ ...DEFAULT_WORKLOAD, conversations: flags.conversations, turnsPerConversation: flags.turns, apps: flags.apps });
        const traffic = { model: flags.model, indexerUrl: pool.indexerUrl, podUrls: pool.podUrls, blockSize, concurrency: flags.concurrency, loadBound: 2 };
        const results: PhaseResult[] = [];
        for (const policy of POLICIES) {
          await resetCaches(traffic);
          log.info('replaying workload', { policy, requests: turns.length });
          results.push(await runPhase(policy, turns, traffic));
        }
        printResults(results, [...pool.podUrls.keys()]);
        if (flags.json) {
          mkdirSync(dirname(flags.json), { recursive: true });
          writeFileSync(flags.json, `${JSON.stringify({ flags, results }, null, 2)}\n`);
        }
        if (results.some((r) => r.errors > 0)) process.exitCode = 1;
      } finally {
        await pool.stop();
      }
    });
}
