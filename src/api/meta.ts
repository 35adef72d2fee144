// Shared pieces of the kvroute API: the group/version, Kubernetes object metadata as the operator reads
// it, metav1-style conditions, label maps and resource quantities, each a zod schema that both the
// TypeScript types and the generated CRD schemas come from.

import { z } from 'zod';

export const API_GROUP = 'inference.kvroute.io';
export const API_VERSION = 'v1alpha1';
export const GROUP_VERSION = `${API_GROUP}/${API_VERSION}`;

/** The label llm-d puts on pods that serve inference: the pods a pool's router and indexer consider. */
export const INFERENCE_SERVING_LABEL = 'llm-d.ai/inferenceServing';

/** A label key or value as Kubernetes accepts it (values up to 63 characters, keys may carry a prefix). */
export const LabelMap = z.record(z.string().max(317), z.string().max(63)).meta({
  description: 'label keys and values that pods must carry',
});
export type LabelMap = z.infer<typeof LabelMap>;

/** A resource quantity ("2", "500m", "16Gi") or a plain integer, as Kubernetes stores it. */
export const Quantity = z
  .union([z.int(), z.string().regex(/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i?|[mkMGTPE]|m|u|n)?$/)])
  .meta({ 'x-kubernetes-int-or-string': true });

export const ResourceRequirements = z.object({
  requests: z.record(z.string().max(253), Quantity).optional(),
  limits: z.record(z.string().max(253), Quantity).optional(),
});
export type ResourceRequirements = z.infer<typeof ResourceRequirements>;

/** A metav1.Condition: the status fields every reconciler writes the same way. */
export const Condition = z.object({
  type: z.string().min(1).max(316),
  status: z.enum(['True', 'False', 'Unknown']),
  observedGeneration: z.int().min(0).optional(),
  lastTransitionTime: z.string().meta({ format: 'date-time' }),
  reason: z.string().min(1).max(1024),
  message: z.string().max(32768),
});
export type Condition = z.infer<typeof Condition>;

export const Conditions = z
  .array(Condition)
  .max(16)
  .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] });

/** The metadata fields the operator reads from any object it watches. */
export const ObjectMeta = z.object({
  name: z.string(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  generation: z.int().optional(),
  resourceVersion: z.string().optional(),
  creationTimestamp: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  ownerReferences: z
    .array(z.object({ apiVersion: z.string(), kind: z.string(), name: z.string(), uid: z.string(), controller: z.boolean().optional() }))
    .optional(),
  deletionTimestamp: z.string().optional(),
});
export type ObjectMeta = z.infer<typeof ObjectMeta>;

/** Turns zod issues into one line that names each offending field and what was expected. */
export function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');
}
