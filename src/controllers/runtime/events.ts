// Kubernetes Events for what people watching `kubectl describe` should see: a condition of a pool or
// model changing. Fire-and-forget: a failed Event is logged (rate-limited), never fails a reconcile.

import type { Logger } from '../../common/log.ts';
import type { Condition } from '../../api/meta.ts';
import { KubeApiError, resourcePath, type KubeApi } from '../../common/kube/kube-client.ts';

export interface InvolvedObject {
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
  uid?: string;
}

/** Conditions whose True status is bad news; for every other type, False is. */
const TRUE_IS_BAD = new Set(['Degraded']);
const NEUTRAL = new Set(['Progressing']);

export function eventType(c: Pick<Condition, 'type' | 'status'>): 'Normal' | 'Warning' {
  if (NEUTRAL.has(c.type) || c.status === 'Unknown') return 'Normal';
  return (c.status === 'True') === TRUE_IS_BAD.has(c.type) ? 'Warning' : 'Normal';
}

/** The conditions in `next` whose status or reason differs from `prev`. */
export function changedConditions(prev: readonly Condition[] | undefined, next: readonly Condition[]): Condition[] {
  return next.filter((c) => {
    const p = prev?.find((x) => x.type === c.type);
    return !p || p.status !== c.status || p.reason !== c.reason;
  });
}

/** The API server refuses new objects in a namespace being deleted; an Event there would go with it anyway. */
export function refusedByTerminatingNamespace(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 403 && err.message.includes('because it is being terminated');
}

export class EventRecorder {
  private readonly client: KubeApi;
  private readonly log: Logger;
  private readonly component: string;
  private readonly instance: string;

  constructor(client: KubeApi, log: Logger, instance: string, component = 'kvroute-operator') {
    this.client = client;
    this.log = log;
    this.component = component;
    this.instance = instance;
  }

  record(obj: InvolvedObject, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { generateName: `${obj.name}.`, namespace: obj.namespace },
      involvedObject: obj,
      type,
      reason,
      message: message.slice(0, 1024),
      source: { component: this.component },
      reportingComponent: this.component,
      reportingInstance: this.instance,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    this.client.request('POST', resourcePath('v1', 'Event', obj.namespace), { body: event }).catch((err: unknown) => {
      if (refusedByTerminatingNamespace(err))
        this.log.debug('not recording an Event in a terminating namespace', { namespace: obj.namespace, reason });
      else this.log.limited('event-failed', 'warn', 'could not record an Event', { err, reason });
    });
  }

  /** One Event per condition that changed, typed by whether the change is bad news. */
  recordConditionChanges(obj: InvolvedObject, prev: readonly Condition[] | undefined, next: readonly Condition[]): void {
    for (const c of changedConditions(prev, next)) this.record(obj, eventType(c), c.reason, `${c.type}=${c.status}: ${c.message}`);
  }
}
