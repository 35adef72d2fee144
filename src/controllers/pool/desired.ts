// Every object an InferencePool should own, computed purely from the pool, its accepted models and
// what the cluster offers, plus the optional objects that must be removed when no longer wanted.

import type { InferenceModel } from '../../api/inference-model.ts';
import type { InferencePool } from '../../api/inference-pool.ts';
import { names } from '../objects.ts';
import { buildEnvoyFilter, buildGatewayInferencePool } from './gateway.ts';
import { buildModelServerDeployment, buildModelServerService } from './model-server.ts';
import { buildRouterConfigMap, buildRouterDeployment, buildRouterRbac, buildRouterService } from './router.ts';

export interface DesiredObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string };
  [field: string]: unknown;
}

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
}

export interface DesiredOptions {
  defaultImage: string;
  clusterDomain: string;
  /** Whether inferencepools.inference.networking.k8s.io is installed in the cluster. */
  gatewayInferencePoolCrd: boolean;
}

export interface DesiredState {
  apply: DesiredObject[];
  /** Objects this pool may own that are not wanted now; deleted if present and owned by the pool. */
  prune: ObjectRef[];
}

export function desiredPoolObjects(pool: InferencePool, acceptedModels: InferenceModel[], options: DesiredOptions): DesiredState {
  const ns = pool.metadata.namespace ?? 'default';
  const apply: DesiredObject[] = [];
  const prune: ObjectRef[] = [];
  const add = (obj: unknown) => apply.push(obj as DesiredObject);
  const name = pool.metadata.name;

  add(buildRouterConfigMap(pool, acceptedModels));
  for (const o of buildRouterRbac(pool)) add(o);
  add(buildRouterService(pool));
  add(buildRouterDeployment(pool, { defaultImage: options.defaultImage }));

  const vllmDeployment = buildModelServerDeployment(pool);
  const vllmService = buildModelServerService(pool);
  if (vllmDeployment && vllmService) {
    add(vllmService);
    add(vllmDeployment);
  } else {
    prune.push({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: ns, name: names.vllm(name) });
    prune.push({ apiVersion: 'v1', kind: 'Service', namespace: ns, name: names.vllm(name) });
  }

  const envoyFilter = buildEnvoyFilter(pool, { clusterDomain: options.clusterDomain });
  if (envoyFilter) add(envoyFilter);
  else prune.push({ apiVersion: 'networking.istio.io/v1alpha3', kind: 'EnvoyFilter', namespace: ns, name: names.envoyFilter(name) });

  if (options.gatewayInferencePoolCrd) add(buildGatewayInferencePool(pool));
  return { apply, prune };
}
