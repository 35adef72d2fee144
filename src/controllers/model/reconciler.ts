// Reconciles one InferenceModel's status: whether its pool exists (ResolvedRefs) and whether the pool
// accepts it or another, older model already claims its modelName (Accepted).

import type { KubernetesObject } from '@kubernetes/client-node';
import { describeIssues, GROUP_VERSION } from '../../api/meta.ts';
import { InferenceModel, type InferenceModelStatus } from '../../api/inference-model.ts';
import type { Logger } from '../../common/log.ts';
import { mergeConditions } from '../conditions.ts';
import { FIELD_MANAGER } from '../objects.ts';
import { parseModels } from '../pool/reconciler.ts';
import type { InformerCache } from '../../common/kube/informer.ts';
import type { EventRecorder } from '../runtime/events.ts';
import type { KubeApi } from '../../common/kube/kube-client.ts';
import { stableJson } from '../stable-json.ts';
import { resolveModels } from './resolve.ts';

export interface ModelReconcilerOptions {
  client: KubeApi;
  pools: InformerCache<KubernetesObject>;
  models: InformerCache<KubernetesObject>;
  log: Logger;
  events?: EventRecorder;
  now?: () => Date;
}

export class ModelReconciler {
  private readonly o: ModelReconcilerOptions;
  constructor(options: ModelReconcilerOptions) {
    this.o = options;
  }

  async reconcile(key: string): Promise<void> {
    const [namespace, name] = key.split('/') as [string, string];
    const { pools, models, log } = this.o;
    const raw = models.get(name, namespace);
    if (!raw) return;
    const all = parseModels(models.list(namespace), log);
    const model = all.find((m) => m.metadata.name === name);
    // A cluster without the CRD's validation (or a rule only the schema knows) stores any spec: say why
    // the model is not served on the model itself, not only in the operator's log.
    if (!model) return this.reportInvalid(raw, name, namespace);
    const r = resolveModels(all, (n) => pools.get(n, namespace) !== undefined).get(name)!;
    const status: InferenceModelStatus = {
      observedGeneration: model.metadata.generation ?? 0,
      conditions: mergeConditions(model.status?.conditions, r.conditions, model.metadata.generation, this.o.now?.() ?? new Date()),
    };
    await this.writeStatus(name, namespace, model.metadata.uid, model.status, status);
  }

  /** Accepted False, reason InvalidSpec, with the schema's issues naming each field. */
  private async reportInvalid(raw: KubernetesObject, name: string, namespace: string): Promise<void> {
    const parsed = InferenceModel.safeParse(raw);
    if (parsed.success) return;
    const meta = raw.metadata ?? {};
    const prevStatus = (raw as { status?: InferenceModelStatus }).status;
    const prev = Array.isArray(prevStatus?.conditions) ? prevStatus.conditions : undefined;
    const condition = {
      type: 'Accepted',
      status: 'False',
      reason: 'InvalidSpec',
      message: `spec does not match the InferenceModel schema: ${describeIssues(parsed.error)}`,
    } as const;
    const status: InferenceModelStatus = {
      observedGeneration: meta.generation ?? 0,
      conditions: mergeConditions(prev, [condition], meta.generation, this.o.now?.() ?? new Date()),
    };
    await this.writeStatus(name, namespace, meta.uid, prevStatus, status);
  }

  private async writeStatus(
    name: string,
    namespace: string,
    uid: string | undefined,
    previous: InferenceModelStatus | undefined,
    status: InferenceModelStatus,
  ): Promise<void> {
    if (stableJson(status) === stableJson(previous ?? {})) return;
    const { client } = this.o;
    await client.apply({ apiVersion: GROUP_VERSION, kind: 'InferenceModel', metadata: { name, namespace }, status } as never, {
      fieldManager: FIELD_MANAGER,
      force: true,
      subresource: 'status',
    });
    this.o.events?.recordConditionChanges(
      { apiVersion: GROUP_VERSION, kind: 'InferenceModel', name, namespace, ...(uid ? { uid } : {}) },
      previous?.conditions,
      status.conditions ?? [],
    );
  }
}
