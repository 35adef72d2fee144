// Every object an InferencePool should own, computed purely from the pool, its accepted models and
// what the cluster offers, plus the optional objects that must be removed when no longer wanted.

import type { InferenceModel } from '../../api/inference-model.ts';
import type { InferencePool } from '../../api/inference-pool.ts';
import { names } from '../objects.ts';
import {
  DESTINATION_RULE_API,
  ENVOY_FILTER_API,
  GIE_INFERENCE_POOL_API,
  apiName,
  type ApiKind,
  type ServedApis,
} from '../runtime/optional-apis.ts';
import { buildEnvoyFilter } from './envoy-filter.ts';
import { buildRouterDestinationRule, gatewayNamespace, gatewayNamespaceAllowed } from './gateway.ts';
import { GIE_POOL_API_VERSION, buildGieInferencePool, wantsGieInferencePool } from './gie-pool.ts';
import { poolAdapters } from './lora.ts';
import { buildModelServerDeployment, buildModelServerService } from './model-server.ts';
import {
  buildModelServerNetworkPolicy,
  buildRouterNetworkPolicy,
  DEFAULT_NETWORK_POLICY,
  networkPolicyNames,
  type NetworkPolicyOptions,
} from './network-policy.ts';
import { buildRouterConfigMap, buildRouterDeployment, buildRouterRbac, buildRouterService } from './router.ts';
import { ownSelection, type PoolSelection } from './selection.ts';

export interface DesiredObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string };
  [field: string]: unknown;
}

interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
}

export interface DesiredOptions {
  defaultImage: string;
  clusterDomain: string;
  /** Which optional APIs the cluster serves (discovery in the operator, the --api flags of `kvroute render`). */
  apis: ServedApis;
  /**
   * The pool's pods and ports (selection.ts resolves them): its own when left out; required for a pool
   * with spec.poolRef, whose selection is the referenced InferencePool's.
   */
  selection?: PoolSelection;
  /**
   * Namespaces besides its own where a pool may place gateway objects (the operator's
   * --gateway-namespaces); none when absent.
   */
  gatewayNamespaces?: ReadonlySet<string>;
  /** The pool's NetworkPolicies (the operator's --network-policies, --gateway-peers, --metrics-peers); on with defaults when absent. */
  networkPolicy?: NetworkPolicyOptions;
}

export interface DesiredState {
  apply: DesiredObject[];
  /** Objects this pool may own that are not wanted now; deleted if present and owned by the pool. */
  prune: ObjectRef[];
  /** APIs the pool's spec needs that the cluster does not serve, named as apiName() does; reported in status. */
  missingApis: string[];
  /** The gateway namespace the pool asks for and the operator's allowlist does not permit; nothing is written there. */
  gatewayNotAllowed?: string;
}

const served = (apis: ServedApis, api: ApiKind) => apis.isServed(api.group, api.version, api.kind);

export function desiredPoolObjects(pool: InferencePool, acceptedModels: InferenceModel[], options: DesiredOptions): DesiredState {
  const ns = pool.metadata.namespace ?? 'default';
  const apply: DesiredObject[] = [];
  const prune: ObjectRef[] = [];
  const add = (obj: unknown) => apply.push(obj as DesiredObject);
  const name = pool.metadata.name;

  const selection = options.selection ?? ownSelection(pool);
  if (!selection)
    throw new Error(`InferencePool ${ns}/${name}: spec.poolRef must be resolved to the referenced InferencePool's selection first`);
  // LoRA adapters come from the accepted models: vLLM loads them and the indexer hashes with their paths.
  const adapters = poolAdapters(pool, acceptedModels);
  add(buildRouterConfigMap(pool, acceptedModels, selection, adapters));
  for (const o of buildRouterRbac(pool)) add(o);
  add(buildRouterService(pool));
  add(buildRouterDeployment(pool, { defaultImage: options.defaultImage }));

  const vllmDeployment = buildModelServerDeployment(pool, adapters);
  const vllmService = buildModelServerService(pool);
  if (vllmDeployment && vllmService) {
    add(vllmService);
    add(vllmDeployment);
  } else {
    prune.push({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: ns, name: names.vllm(name) });
    prune.push({ apiVersion: 'v1', kind: 'Service', namespace: ns, name: names.vllm(name) });
  }

  // Gateway wiring. The EnvoyFilter path (Istio without GIE) when the pool asks for it; otherwise the GIE
  // path wherever GIE's InferencePool is served. The pool's stale EnvoyFilters, wherever they are, are
  // swept by the reconciler's EnvoyFilter sync rather than pruned here.
  const missingApis: string[] = [];
  let gatewayNotAllowed: string | undefined;
  let routed = false;
  if (pool.spec.gateway.envoyFilter) {
    if (!gatewayNamespaceAllowed(pool, options.gatewayNamespaces ?? new Set())) gatewayNotAllowed = gatewayNamespace(pool);
    else if (!served(options.apis, ENVOY_FILTER_API)) missingApis.push(apiName(ENVOY_FILTER_API));
    else add(buildEnvoyFilter(pool, { clusterDomain: options.clusterDomain }));
    routed = gatewayNotAllowed === undefined;
  }
  const gie = wantsGieInferencePool(pool) && served(options.apis, GIE_INFERENCE_POOL_API);
  if (gie) add(buildGieInferencePool(pool));
  else prune.push({ apiVersion: GIE_POOL_API_VERSION, kind: 'InferencePool', namespace: ns, name: names.gatewayPool(name) });
  // A pool riding on an existing GIE pool (spec.poolRef) is routed to through it.
  routed ||= gie || (!pool.spec.gateway.envoyFilter && pool.spec.poolRef !== undefined);
  // The router speaks TLS: Istio's gateways need the DestinationRule to reach it on either path.
  if (routed && served(options.apis, DESTINATION_RULE_API)) add(buildRouterDestinationRule(pool, { clusterDomain: options.clusterDomain }));
  else {
    if (routed && pool.spec.gateway.envoyFilter) missingApis.push(apiName(DESTINATION_RULE_API));
    prune.push({
      apiVersion: `${DESTINATION_RULE_API.group}/${DESTINATION_RULE_API.version}`,
      kind: 'DestinationRule',
      namespace: ns,
      name: names.router(name),
    });
  }
  // Who may reach the router and model-server pods (network-policy.ts). Applied in the same wave as the
  // Deployments: the reconciler applies a pool's objects concurrently, so order here is only for reading.
  const netpol = options.networkPolicy ?? DEFAULT_NETWORK_POLICY;
  if (netpol.enabled) {
    add(buildRouterNetworkPolicy(pool, netpol));
    add(buildModelServerNetworkPolicy(pool, selection, netpol));
  } else {
    for (const n of [networkPolicyNames.router(name), networkPolicyNames.modelServers(name)])
      prune.push({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', namespace: ns, name: n });
  }
  return { apply, prune, missingApis, ...(gatewayNotAllowed ? { gatewayNotAllowed } : {}) };
}
