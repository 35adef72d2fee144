// Debug and fault-control routes of one simulated pod, served only with --debug-endpoints (they carry
// no authentication: tests and the chaos suite only). A read-only view of what the prefix cache holds
// (to check an indexer against the pods' real caches), and faults injected at run time: a hung pod
// (accepts connections, never answers), a stalled /metrics, dropped event batches, a publisher stall.

import type http from 'node:http';
import { z } from 'zod';
import { HttpError, readJson, sendJson, type RouteHandler } from '../common/http.ts';
import type { BlockPool } from './cache/block-pool.ts';
import type { KvEventPublisher } from './events/publisher.ts';
import type { RequestBlockHasher } from './request.ts';

/** Faults that change how the pod's HTTP server answers. */
export class FaultGate {
  /** Every route but /debug/* accepts the request and never answers. */
  hang = false;
  /** GET /metrics accepts the request and never answers; the OpenAI API still serves. */
  metricsStall = false;
  readonly #parked = new Set<http.ServerResponse>();

  /** `handler`, unless `stalled()` says this route is stalled now: then the request is held unanswered. */
  gate(handler: RouteHandler, stalled: () => boolean): RouteHandler {
    return (req, res, url) => {
      if (!stalled()) return handler(req, res, url);
      this.#parked.add(res);
      res.once('close', () => this.#parked.delete(res));
    };
  }

  /** Drops the held requests' connections (when the fault is lifted, and at shutdown, so close() can finish). */
  releaseParked(): void {
    for (const res of this.#parked) res.socket?.destroy();
    this.#parked.clear();
  }
}

const FaultsUpdate = z
  .object({
    hang: z.boolean().optional(),
    metricsStall: z.boolean().optional(),
    dropEventBatchRate: z.number().min(0).max(1).optional(),
    /** Stalls the event publisher for this many wall ms from now (batches queue, then flush in order). */
    publisherStallMs: z.number().nonnegative().optional(),
  })
  .strict();

const PrefixQuery = z.object({ tokens: z.array(z.number().int().nonnegative()) }).strict();

export interface DebugRouteDeps {
  podId: string;
  blockSize: number;
  pool: BlockPool;
  publisher: KvEventPublisher | null;
  /** The hasher of a request without LoRA or cache salt. */
  hasher: RequestBlockHasher;
  faults: FaultGate;
}

function badBody(what: string, err: z.ZodError): HttpError {
  return new HttpError(400, `${what}: ${err.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ')}`);
}

function digestKey(digest: Uint8Array): string {
  return Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength).toString('latin1');
}

/** How many leading full blocks of `tokens` the pool holds (the prefix a request would hit, uncapped). */
function residentPrefixBlocks(tokens: readonly number[], blockSize: number, hasher: RequestBlockHasher, pool: BlockPool): number {
  let parent: Uint8Array | null = null;
  const full = Math.floor(tokens.length / blockSize);
  for (let i = 0; i < full; i++) {
    const digest = hasher.hashBlock(parent, tokens.slice(i * blockSize, (i + 1) * blockSize), i);
    if (pool.getCachedBlock(digestKey(digest)) < 0) return i;
    parent = digest;
  }
  return full;
}

export function debugRoutes(d: DebugRouteDeps): Record<string, RouteHandler> {
  const faultsView = () => ({
    pod: d.podId,
    hang: d.faults.hang,
    metricsStall: d.faults.metricsStall,
    dropEventBatchRate: d.publisher?.faults.dropRate ?? null,
    publisherStalledUntilMs: d.publisher ? d.publisher.faults.stalledUntilMs : null,
    lastEventSeq: d.publisher ? d.publisher.lastSeq : null,
  });
  return {
    // The distinct block digests the prefix cache holds now (hex), as the indexer should know them.
    'GET /debug/kv-cache': (_req, res) => {
      const digests = d.pool.cachedDigests();
      sendJson(res, 200, {
        pod: d.podId,
        blockSize: d.blockSize,
        blocks: digests.length,
        hashes: digests.map((h) => Buffer.from(h.buffer, h.byteOffset, h.byteLength).toString('hex')),
      });
    },
    'POST /debug/kv-cache/prefix': async (req, res) => {
      const parsed = PrefixQuery.safeParse(await readJson(req));
      if (!parsed.success) throw badBody('POST /debug/kv-cache/prefix expects {"tokens": [token ids]}', parsed.error);
      sendJson(res, 200, { pod: d.podId, blocks: residentPrefixBlocks(parsed.data.tokens, d.blockSize, d.hasher, d.pool) });
    },
    'GET /debug/faults': (_req, res) => sendJson(res, 200, faultsView()),
    'POST /debug/faults': async (req, res) => {
      const parsed = FaultsUpdate.safeParse(await readJson(req));
      if (!parsed.success)
        throw badBody(
          'POST /debug/faults expects {hang?, metricsStall?: boolean, dropEventBatchRate?: 0..1, publisherStallMs?: ms}',
          parsed.error,
        );
      const u = parsed.data;
      const needsPublisher = u.dropEventBatchRate !== undefined || u.publisherStallMs !== undefined;
      if (needsPublisher && !d.publisher) throw new HttpError(409, 'this pod publishes no KV events (--kv-events-endpoint unset)');
      const wasStalled = d.faults.hang || d.faults.metricsStall;
      if (u.hang !== undefined) d.faults.hang = u.hang;
      if (u.metricsStall !== undefined) d.faults.metricsStall = u.metricsStall;
      if (wasStalled && !d.faults.hang && !d.faults.metricsStall) d.faults.releaseParked();
      if (u.dropEventBatchRate !== undefined) d.publisher!.faults.dropRate = u.dropEventBatchRate;
      if (u.publisherStallMs !== undefined) d.publisher!.stall(u.publisherStallMs);
      sendJson(res, 200, faultsView());
    },
  };
}
