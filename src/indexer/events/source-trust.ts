// Who may publish KV events to a central-mode indexer (--zmq-bind) when the pool's pods are known from
// discovery: a ZAP handler (ZeroMQ RFC 27) that admits a publisher's connection only from the address
// of a pod of the pool, and the check that a message's topic names a Ready pod of the pool. Whatever
// fails either is dropped, counted by reason and logged (docs/security.md).

import { Context, Router } from 'zeromq';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../../common/log.ts';

/** The pods allowed to publish, by the address they connect from and the pod id their topics carry. */
export interface TrustedPods {
  /**
   * Whether `ip` is the address of a pod of the pool, Ready or not yet: who may connect. Not only Ready
   * ones, because vLLM connects its publisher while still loading, and a refused publisher never
   * connects again (libzmq does not retry after an authentication failure).
   */
  isPoolPod(ip: string): boolean;
  /** Whether `ip` is a Ready pod of the pool (or within its NotReady grace): whose events are applied. */
  isReady(ip: string): boolean;
}

export type UntrustedReason = 'peer_not_pool_pod' | 'topic_pod_not_ready';

function untrustedCounter(registry: Registry): Counter<'reason'> {
  const name = 'kvroute_indexer_untrusted_source_total';
  return (
    (registry.getSingleMetric(name) as Counter<'reason'> | undefined) ??
    new Counter({
      name,
      help: 'Publisher connections refused at the ZAP handshake because they come from no pod of the pool (peer_not_pool_pod), and messages dropped because their topic names no Ready pod of the pool (topic_pod_not_ready).',
      labelNames: ['reason'],
      registers: [registry],
    })
  );
}

/** An address as ZeroMQ and Kubernetes may spell it, reduced to one form: `::ffff:10.0.0.5` is `10.0.0.5`. */
export function normalizeIp(address: string): string {
  const a = address.trim().toLowerCase();
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice('::ffff:'.length) : a;
}

/** The host part of a topic's pod id: vLLM's `kv@$(POD_IP)@model` gives an IP, some deployments add `:port`. */
export function podIdHost(podId: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(podId) ?? /^([^:]+):\d+$/.exec(podId);
  return normalizeIp(m ? m[1]! : podId);
}

/** The ZAP domain the central socket asks its handler about; with the NULL mechanism ZAP runs only when one is set. */
const ZAP_DOMAIN = 'kvroute-indexer';
const ZAP_ENDPOINT = 'inproc://zeromq.zap.01';
/**
 * How long an unknown address is given to appear in discovery before it is refused: a new pod may
 * connect before its IP reaches the indexer's watch. Well under libzmq's 30 s handshake timeout.
 */
const UNKNOWN_PEER_WAIT_MS = 10_000;
const UNKNOWN_PEER_POLL_MS = 100;

/**
 * Guards one central-mode socket. `context` is the socket's own ZeroMQ context, so this handler answers
 * for that socket only (ZAP's endpoint is per context).
 */
export class SourceTrust {
  readonly context = new Context();
  readonly zapDomain = ZAP_DOMAIN;
  private readonly pods: TrustedPods;
  private readonly log: Logger;
  private readonly untrusted: Counter<'reason'>;
  private readonly router = new Router({ context: this.context, linger: 0 });
  private loop: Promise<void> = Promise.resolve();
  /** zeromq.js allows one send at a time per socket; replies to concurrent requests queue here. */
  private sending: Promise<void> = Promise.resolve();
  private readonly pending = new Set<Promise<void>>();
  private closed = false;
  private readonly unknownPeerWaitMs: number;

  private constructor(pods: TrustedPods, log: Logger, registry: Registry, unknownPeerWaitMs: number) {
    this.pods = pods;
    this.unknownPeerWaitMs = unknownPeerWaitMs;
    this.log = log;
    this.untrusted = untrustedCounter(registry);
    // Zero at start, so a dashboard sees the series before the first refusal.
    this.untrusted.inc({ reason: 'peer_not_pool_pod' }, 0);
    this.untrusted.inc({ reason: 'topic_pod_not_ready' }, 0);
  }

  /** Binds the ZAP handler; the socket it guards must be created in `context` with `zapDomain` set. */
  static async start(
    pods: TrustedPods,
    log: Logger,
    registry: Registry,
    options: { unknownPeerWaitMs?: number } = {},
  ): Promise<SourceTrust> {
    const trust = new SourceTrust(pods, log, registry, options.unknownPeerWaitMs ?? UNKNOWN_PEER_WAIT_MS);
    await trust.router.bind(ZAP_ENDPOINT);
    trust.loop = trust.serve();
    return trust;
  }

  /** Whether a message whose topic names `podId` may be applied; drops, counts and logs it otherwise. */
  admitsTopic(podId: string, endpoint: string): boolean {
    if (this.pods.isReady(podIdHost(podId))) return true;
    this.reject('topic_pod_not_ready', 'KV-event message dropped: its topic names no Ready pod of the pool', { podId, endpoint });
    return false;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (!this.router.closed) this.router.close();
    await this.loop;
    await Promise.all([...this.pending]);
  }

  private reject(reason: UntrustedReason, message: string, fields: Record<string, unknown>): void {
    this.untrusted.inc({ reason });
    this.log.limited(`untrusted:${reason}`, 'warn', message, { reason, ...fields });
  }

  /** ZAP requests: [routing id, "", version, request id, domain, address, identity, mechanism, credentials...]. */
  private async serve(): Promise<void> {
    try {
      for await (const frames of this.router) {
        if (frames.length < 8) continue; // Not a ZAP request; libzmq never sends one this short.
        // Answered concurrently: one unknown address waiting for discovery holds up no other.
        const answer = this.answer(frames).finally(() => this.pending.delete(answer));
        this.pending.add(answer);
      }
    } catch (err) {
      if (!this.router.closed) this.log.error('ZAP handler stopped: new publisher connections will be refused', { err });
    }
  }

  private async answer(frames: Buffer[]): Promise<void> {
    const [id, delimiter, version, requestId, domain, address] = frames as [Buffer, Buffer, Buffer, Buffer, Buffer, Buffer];
    const peer = normalizeIp(address.toString('utf8'));
    let ok = domain.toString('utf8') === ZAP_DOMAIN && this.pods.isPoolPod(peer);
    for (let waited = 0; !ok && waited < this.unknownPeerWaitMs && !this.closed; waited += UNKNOWN_PEER_POLL_MS) {
      await new Promise((resolve) => setTimeout(resolve, UNKNOWN_PEER_POLL_MS));
      ok = domain.toString('utf8') === ZAP_DOMAIN && this.pods.isPoolPod(peer);
    }
    if (!ok) this.reject('peer_not_pool_pod', 'KV-event publisher refused: it does not connect from a pod of the pool', { peer });
    const reply = [id, delimiter, version, requestId, ok ? '200' : '400', ok ? 'OK' : 'not a pod of the pool', '', ''];
    this.sending = this.sending.then(async () => {
      if (!this.router.closed) await this.router.send(reply).catch(() => undefined);
    });
    await this.sending;
  }
}
