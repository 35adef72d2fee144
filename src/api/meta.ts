// Shared pieces of the kvroute API: the group/version, Kubernetes object metadata as the operator reads
// it, metav1-style conditions, label maps and resource quantities, each a zod schema that both the
// TypeScript types and the generated CRD schemas come from.

import { z } from 'zod';

export const API_GROUP = 'inference.kvroute.io';
export const API_VERSION = 'v1alpha1';
export const GROUP_VERSION = `${API_GROUP}/${API_VERSION}`;

/**
 * The label llm-d puts on pods that serve inference: the pods a pool's router and indexer consider,
 * unless the pool names another (spec.servingLabel; current llm-d charts use llm-d.ai/inference-serving).
 */
export const INFERENCE_SERVING_LABEL = 'llm-d.ai/inferenceServing';
export const DEFAULT_SERVING_LABEL = { key: INFERENCE_SERVING_LABEL, value: 'true' } as const;

/**
 * A label key as Kubernetes accepts it: an optional DNS-subdomain prefix and "/", then a name of up to
 * 63 characters.
 * @public a piece of the CRD APIs, exported with them
 */
export const LabelKey = z
  .string()
  .min(1)
  .max(317)
  .regex(
    /^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/,
    'expected a label key such as app or example.com/role',
  );
/**
 * A label value: up to 63 characters, alphanumeric at both ends.
 * @public a piece of the CRD APIs, exported with them
 */
export const LabelValue = z
  .string()
  .max(63)
  .regex(/^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/, 'expected a label value: 63 characters or fewer, alphanumeric at both ends');

/** A label key or value as Kubernetes accepts it (values up to 63 characters, keys may carry a prefix). */
export const LabelMap = z.record(LabelKey, LabelValue).meta({
  description: 'label keys and values that pods must carry',
});
export type LabelMap = z.infer<typeof LabelMap>;

/**
 * A rule that involves several fields of one object, stated once for both places it is enforced: as CEL
 * in the CRD (x-kubernetes-validations, checked by the API server, reported at `field`) and in
 * TypeScript (zod, for `kvroute render` and for objects that reached the operator without the CRD).
 */
export interface CrossFieldRule<T> {
  /** CEL over `self`, the object the schema describes. */
  rule: string;
  message: string;
  /** The field the error names, relative to `self`; the object itself when absent. */
  field?: string[];
  holds: (value: T) => boolean;
}

/** `schema` with `rules` checked by zod and emitted as the CRD's x-kubernetes-validations. */
export function withRules<S extends z.ZodType>(schema: S, rules: readonly CrossFieldRule<z.output<S>>[]): S {
  return schema
    .superRefine((value, ctx) => {
      for (const r of rules) if (!r.holds(value)) ctx.addIssue({ code: 'custom', path: r.field ?? [], message: r.message });
    })
    .meta({
      'x-kubernetes-validations': rules.map((r) => ({
        rule: r.rule,
        message: r.message,
        ...(r.field ? { fieldPath: `.${r.field.join('.')}` } : {}),
      })),
    }) as S;
}

/**
 * A resource quantity ("2", "500m", "16Gi") or a plain integer, as Kubernetes stores it.
 * @public a piece of the CRD APIs, exported with them
 */
export const Quantity = z
  .union([
    z.int(),
    z
      .string()
      .max(64)
      .regex(/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i?|[mkMGTPE]|m|u|n)?$/),
  ])
  // The bound on the string form also bounds what CEL rules over quantities may cost the API server.
  .meta({ 'x-kubernetes-int-or-string': true, maxLength: 64 });

/** A resource list (requests or limits); bounded so CEL rules over it fit the API server's cost budget. */
const ResourceList = z
  .record(z.string().max(253), Quantity)
  .refine((m) => Object.keys(m).length <= 32, { message: 'expected at most 32 resources' })
  .meta({ maxProperties: 32 });

export const ResourceRequirements = z.object({
  requests: ResourceList.optional(),
  limits: ResourceList.optional(),
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
  return error.issues
    .map((i) => {
      // A bad record key (a label key, say): zod's own message is "Invalid key in record"; the key's issues say what was expected.
      const message = i.code === 'invalid_key' ? i.issues.map((k) => k.message).join('; ') || i.message : i.message;
      return `${i.path.length ? i.path.join('.') : '(root)'}: ${message}`;
    })
    .join('; ');
}
