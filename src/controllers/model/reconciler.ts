// Reconciles one InferenceModel's status: whether its pool exists (ResolvedRefs) and whether the pool
// accepts it or another, older model already claims its modelName (Accepted).

import type { KubernetesObject } from '@kubernetes/client-node';
import { GROUP_VERSION } from '../../api/meta.ts';
import type { InferenceModelStatus } from '../../api/inference-model.ts';
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
    const { pools, models, client, log } = this.o;
    if (!models.get(name, namespace)) return;
    const all = parseModels(models.list(namespace), log);
    const model = all.find((m) => m.metadata.name === name);
    if (!model) return; // invalid models are logged by parseModels; the schema keeps them out in practice
    const r = resolveModels(all, (n) => pools.get(n, namespace) !== undefined).get(name)!;
    const status: InferenceModelStatus = {
      observedGeneration: model.metadata.generation ?? 0,
      conditions: mergeConditions(model.status?.conditions, r.conditions, model.metadata.generation, this.o.now?.() ?? new Date()),
    };
    if (stableJson(status) === stableJson(model.status ?? {})) return;
    await client.apply({ apiVersion: GROUP_VERSION, kind: 'InferenceModel', metadata: { name, namespace }, status } as never, {
      fieldManager: FIELD_MANAGER,
      force: true,
      subresource: 'status',
    });
    this.o.events?.recordConditionChanges(
      { apiVersion: GROUP_VERSION, kind: 'InferenceModel', name, namespace, ...(model.metadata.uid ? { uid: model.metadata.uid } : {}) },
      model.status?.conditions,
      status.conditions ?? [],
    );
  }
}
