// The Gateway API Inference Extension (GIE) side of a pool: the inference.networking.k8s.io/v1
// InferencePool that lets an HTTPRoute send to the pool (backendRefs kind InferencePool) with kvroute's
// router as its endpoint picker. Same name as the kvroute pool, owned by it, never written over a GIE
// pool someone else made (the reconciler's ownership check).

import { poolTargetPorts, type InferencePool } from '../../api/inference-pool.ts';
import { names, ownedMeta, podSelector, type Owned } from '../objects.ts';
import { GIE_INFERENCE_POOL_API } from '../runtime/optional-apis.ts';
import { ROUTER_PORTS } from './router.ts';

export const GIE_POOL_API_VERSION = `${GIE_INFERENCE_POOL_API.group}/${GIE_INFERENCE_POOL_API.version}`;

export type GieInferencePool = Owned & {
  spec: {
    selector: { matchLabels: Record<string, string> };
    targetPorts: { number: number }[];
    endpointPickerRef: { kind: 'Service'; name: string; port: { number: number }; failureMode: 'FailOpen' | 'FailClose' };
  };
};

/**
 * The labels a serving pod of the pool carries: the pool's selector plus the serving label. GIE pools
 * have no serving-label notion, so it goes into the selector; the gateway then sees the same pods the
 * router does.
 */
function gieSelector(pool: InferencePool): Record<string, string> {
  return { ...podSelector(pool), [pool.spec.servingLabel.key]: pool.spec.servingLabel.value };
}

/** Whether the pool wants a GIE InferencePool of its own: not when it rides on an existing one, nor on the EnvoyFilter path. */
export function wantsGieInferencePool(pool: InferencePool): boolean {
  return !pool.spec.gateway.envoyFilter && pool.spec.poolRef === undefined;
}

/** The GIE v1 InferencePool for the pool, with the pool's router Service as its endpoint picker. */
export function buildGieInferencePool(pool: InferencePool): GieInferencePool {
  // Undefined only for a pool that rides on a GIE pool (poolRef), which wantsGieInferencePool excludes.
  const ports = poolTargetPorts(pool.spec);
  if (!ports) throw new Error('spec.poolRef: a pool that takes its pods from a GIE InferencePool gets no GIE InferencePool of its own');
  return {
    apiVersion: GIE_POOL_API_VERSION,
    kind: 'InferencePool',
    metadata: ownedMeta(pool, names.gatewayPool(pool.metadata.name), 'gateway'),
    spec: {
      selector: { matchLabels: gieSelector(pool) },
      targetPorts: ports.map((number) => ({ number })),
      endpointPickerRef: {
        kind: 'Service',
        name: names.router(pool.metadata.name),
        port: { number: ROUTER_PORTS.grpc },
        failureMode: pool.spec.router.failureMode,
      },
    },
  };
}
