// Discovery in central mode (--zmq-bind with --discover-pods): the pods publish to the indexer, so
// discovery connects to nothing; it keeps the set of the pool's Ready pods (with the NotReady grace)
// whose events are applied, and each one's replay endpoint. A pod leaving the set is forgotten by the
// index. Which addresses may connect at all (any pod of the pool) is asked of discovery itself.

import { normalizeIp, type TrustedPods } from '../events/source-trust.ts';
import type { PodSubscriptions } from './pod-discovery.ts';

export class ReadyPods implements TrustedPods, PodSubscriptions {
  /** Pod IP -> rank 0's replay endpoint (undefined: the pods offer none). */
  private readonly pods = new Map<string, string | undefined>();
  private readonly forget: (podId: string) => Promise<void>;
  private readonly poolPod: (ip: string) => boolean;

  /**
   * `forget` drops a pod that left the set from the ingestor and the index; `poolPod` says whether an
   * address is any pod of the pool (discovery's view, Ready or not).
   */
  constructor(forget: (podId: string) => Promise<void>, poolPod: (ip: string) => boolean) {
    this.forget = forget;
    this.poolPod = poolPod;
  }

  isPoolPod(ip: string): boolean {
    const a = normalizeIp(ip);
    return this.pods.has(a) || this.poolPod(a);
  }

  isReady(ip: string): boolean {
    return this.pods.has(normalizeIp(ip));
  }

  /** Rank 0's replay endpoint of a pod in the set; the ingestor adds the rank to the port for others. */
  replayEndpoint(podId: string): string | undefined {
    return this.pods.get(normalizeIp(podId));
  }

  /** Discovery calls this once per data-parallel rank; the first (rank 0) names the replay endpoint. */
  connect(podId: string, _endpoint: string, replayEndpoint: string | undefined): Promise<void> {
    const ip = normalizeIp(podId);
    if (!this.pods.has(ip)) this.pods.set(ip, replayEndpoint);
    return Promise.resolve();
  }

  async disconnect(podId: string): Promise<void> {
    this.pods.delete(normalizeIp(podId));
    await this.forget(podId);
  }
}
