// The local data plane behind `kvroute demo`: a `kvroute indexer` process and a `kvroute sim`
// process with N simulated vLLM pods publishing KV events to it, started as real child processes
// and stopped with SIGTERM.

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { stopChild } from '../common/child-process.ts';
import type { Logger } from '../common/log.ts';

const KVROUTE_BIN = fileURLToPath(new URL('../../bin/kvroute.js', import.meta.url));

export interface LocalPoolOptions {
  model: string;
  tokenizer: string;
  pods: number;
  blockSize: number;
  hashSeed: string;
  kvBlocksPerPod: number;
  timeScale: number;
  simBasePort: number;
  indexerHttpPort: number;
  indexerGrpcPort: number;
  zmqPort: number;
  logDir: string;
}

export interface LocalPool {
  indexerUrl: string;
  podUrls: Map<string, string>;
  stop(): Promise<void>;
}

async function waitHealthy(url: string, child: ChildProcess, what: string, deadlineMs = 60_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode} before it was ready (see its log)`);
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} was not healthy at ${url} within ${deadlineMs} ms`);
}

function startChild(args: string[], logFile: string): ChildProcess {
  const child = spawn(process.execPath, [KVROUTE_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = createWriteStream(logFile);
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  return child;
}

export async function startLocalPool(o: LocalPoolOptions, log: Logger): Promise<LocalPool> {
  mkdirSync(o.logDir, { recursive: true });
  const children: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(children.map((child) => stopChild(child, 10_000)));
  };
  try {
    const indexer = startChild(
      [
        'indexer',
        `--zmq-bind=tcp://127.0.0.1:${o.zmqPort}`,
        '--listen-host=127.0.0.1',
        `--http-port=${o.indexerHttpPort}`,
        `--grpc-port=${o.indexerGrpcPort}`,
        `--block-size=${o.blockSize}`,
        `--hash-seed=${o.hashSeed}`,
        `--tokenizer=${o.model}=${o.tokenizer}`,
      ],
      `${o.logDir}/indexer.log`,
    );
    children.push(indexer);
    const indexerUrl = `http://127.0.0.1:${o.indexerHttpPort}`;
    await waitHealthy(`${indexerUrl}/healthz`, indexer, 'kvroute indexer');
    log.info('indexer ready', { url: indexerUrl, log: `${o.logDir}/indexer.log` });

    const sim = startChild(
      [
        'sim',
        `--replicas=${o.pods}`,
        `--base-port=${o.simBasePort}`,
        `--model=${o.model}`,
        `--tokenizer=${o.tokenizer}`,
        `--block-size=${o.blockSize}`,
        `--hash-seed=${o.hashSeed}`,
        `--kv-blocks=${o.kvBlocksPerPod}`,
        // vLLM refuses a context longer than its KV cache holds.
        `--max-model-len=${Math.min(8192, (o.kvBlocksPerPod - 1) * o.blockSize)}`,
        `--time-scale=${o.timeScale}`,
        `--kv-events-endpoint=tcp://127.0.0.1:${o.zmqPort}`,
        // vLLM publishes AllBlocksCleared with its next step; an idle demo pod would never send it.
        '--kv-events-flush-on-reset',
      ],
      `${o.logDir}/sim.log`,
    );
    children.push(sim);
    const podUrls = new Map<string, string>();
    for (let i = 0; i < o.pods; i++) {
      const id = o.pods === 1 ? 'sim-0' : `sim-${i}`;
      const url = `http://127.0.0.1:${o.simBasePort + i}`;
      await waitHealthy(`${url}/health`, sim, `simulated pod ${id}`);
      podUrls.set(id, url);
    }
    log.info('simulated pods ready', { pods: [...podUrls.keys()], log: `${o.logDir}/sim.log` });
    return { indexerUrl, podUrls, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
