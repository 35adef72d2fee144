// Pod discovery decisions, free of I/O: what a pod object says (IP, Ready, terminating), how a pod's
// NotReady grace is tracked across updates, which pod IPs the indexer must connect to or drop, and
// the publisher endpoints of each of a pod's data-parallel ranks. The pod id is the IP, because
// vLLM's topic is kv@$(POD_IP)@<model>; a new IP is a new pod.

import type { V1Pod } from '@kubernetes/client-node';
import { DEFAULT_SERVING_LABEL } from '../../api/meta.ts';

/** What discovery needs from one pod object. */
export interface PodObservation {
  /** The pod's uid (namespace/name when the object has none), stable across its updates. */
  key: string;
  ip: string | null;
  ready: boolean;
  /** deletionTimestamp is set: the pod is shutting down and will not serve again. */
  terminating: boolean;
}

/** A pod as discovery remembers it between updates. */
export interface TrackedPod {
  ip: string | null;
  ready: boolean;
  terminating: boolean;
  /** When this pod, Ready before at this IP, stopped being Ready (ms); null while Ready or never Ready. */
  notReadySince: number | null;
}

export type DisconnectReason = 'gone' | 'not_ready' | 'terminating';

export interface ConnectionPlan {
  /** Pod IPs to connect, sorted. */
  connect: string[];
  /** Connected pod IPs to drop with why, sorted by IP. */
  disconnect: Array<{ ip: string; reason: DisconnectReason }>;
  /** When a NotReady pod's grace ends and the plan must be made again (ms); null: no deadline. */
  recheckAt: number | null;
}

export function observePod(pod: V1Pod): PodObservation {
  const meta = pod.metadata ?? {};
  const ready = pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
  return {
    key: meta.uid ?? `${meta.namespace ?? ''}/${meta.name ?? ''}`,
    ip: pod.status?.podIP || null,
    ready,
    terminating: meta.deletionTimestamp !== undefined && meta.deletionTimestamp !== null,
  };
}

/**
 * The tracked state after an observation. A pod that was Ready at an IP starts its grace when it
 * stops being Ready; one that was never Ready at its current IP (new, or moved) gets no grace.
 */
export function trackPod(previous: TrackedPod | undefined, seen: PodObservation, now: number): TrackedPod {
  const base = { ip: seen.ip, ready: seen.ready, terminating: seen.terminating };
  if (seen.ready) return { ...base, notReadySince: null };
  if (!previous || previous.ip !== seen.ip) return { ...base, notReadySince: null };
  if (previous.ready) return { ...base, notReadySince: now };
  return { ...base, notReadySince: previous.notReadySince };
}

/** Whether the indexer should be subscribed to this pod now. */
function wantsConnection(pod: TrackedPod, now: number, graceMs: number): boolean {
  if (pod.ip === null || pod.terminating) return false;
  if (pod.ready) return true;
  return pod.notReadySince !== null && now - pod.notReadySince < graceMs;
}

/** Connections to open and close so that exactly the wanted pods' IPs are connected. */
export function planConnections(pods: Iterable<TrackedPod>, connected: ReadonlySet<string>, now: number, graceMs: number): ConnectionPlan {
  const wanted = new Set<string>();
  const why = new Map<string, DisconnectReason>();
  let recheckAt: number | null = null;
  for (const pod of pods) {
    if (pod.ip === null) continue;
    if (wantsConnection(pod, now, graceMs)) {
      wanted.add(pod.ip);
      if (!pod.ready && pod.notReadySince !== null) {
        const end = pod.notReadySince + graceMs;
        recheckAt = recheckAt === null ? end : Math.min(recheckAt, end);
      }
    } else if (!why.has(pod.ip) || pod.terminating) {
      why.set(pod.ip, pod.terminating ? 'terminating' : 'not_ready');
    }
  }
  const connect = [...wanted].filter((ip) => !connected.has(ip)).sort();
  const disconnect = [...connected]
    .filter((ip) => !wanted.has(ip))
    .sort()
    .map((ip) => ({ ip, reason: why.get(ip) ?? ('gone' as const) }));
  return { connect, disconnect, recheckAt };
}

/** The label selector discovery watches with: the pool's labels plus its serving label (llm-d's by default). */
export function podLabelSelector(
  selector: Readonly<Record<string, string>>,
  servingLabel: { key: string; value: string } = DEFAULT_SERVING_LABEL,
): string {
  const labels: Record<string, string> = { ...selector, [servingLabel.key]: servingLabel.value };
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}

/** A ZMQ tcp endpoint for a pod IP (IPv6 in brackets). */
export function podEndpoint(ip: string, port: number): string {
  return ip.includes(':') ? `tcp://[${ip}]:${port}` : `tcp://${ip}:${port}`;
}

/** One data-parallel rank's KV-event publisher in a pod, and its replay endpoint if the pods have one. */
export interface RankEndpoints {
  rank: number;
  endpoint: string;
  replayEndpoint: string | undefined;
}

/**
 * The publishers of ranks 0..dataParallelSize-1 of the pod at `ip`: vLLM offsets both the publisher
 * and the replay port by the rank, also when it binds (`offset_endpoint_port` in its kv_events).
 */
export function podRankEndpoints(
  ip: string,
  ports: { port: number; replayPort: number | null; dataParallelSize: number },
): RankEndpoints[] {
  return Array.from({ length: ports.dataParallelSize }, (_, rank) => ({
    rank,
    endpoint: podEndpoint(ip, ports.port + rank),
    replayEndpoint: ports.replayPort === null ? undefined : podEndpoint(ip, ports.replayPort + rank),
  }));
}
