// The InferenceModel custom resource: a model name clients send, the pool that serves it, its priority
// (GIE's meaning: higher first, below 0 sheddable; the older criticality is accepted as an alias), and
// the base model or LoRA adapters it is split across.

import { z } from 'zod';
import { Conditions, ObjectMeta } from './meta.ts';

/**
 * A base model or LoRA adapter an InferenceModel splits its traffic across (spec.targetModels[]).
 * @public a piece of the InferenceModel API, exported with it
 */
export const TargetModel = z.object({
  name: z.string().min(1).max(512).meta({
    description:
      "the model vLLM runs for these requests: the pool's base model (its served name), or else a LoRA adapter loaded under this name",
  }),
  weight: z.int().min(0).max(1_000_000).optional(),
  source: z.string().min(1).max(1024).optional().meta({
    description:
      'where vLLM loads the adapter from (--lora-modules name=source): a Hugging Face repo id or a path in the pod; defaults to name',
  }),
});
export type TargetModel = z.infer<typeof TargetModel>;

/** The deprecated criticality levels and the priority each stands for (GIE's order; only Sheddable is below 0). */
const CRITICALITY_PRIORITY = { Critical: 1, Standard: 0, Sheddable: -1 } as const;

export const InferenceModelSpec = z.object({
  modelName: z
    .string()
    .min(1)
    .max(512)
    .meta({ 'x-kubernetes-validations': [{ rule: 'self == oldSelf', message: 'modelName is immutable' }] }),
  poolRef: z.object({ name: z.string().min(1).max(253) }),
  priority: z.int().min(-2147483648).max(2147483647).optional().meta({
    description:
      "GIE's priority: higher is served first, below 0 is shed when the pool is saturated; unset is 0 (or the criticality's value)",
  }),
  criticality: z.enum(['Critical', 'Standard', 'Sheddable']).optional().meta({
    description:
      'deprecated (GIE replaced it with priority): Critical is priority 1, Standard 0, Sheddable -1; priority wins when both are set',
  }),
  targetModels: z
    .array(TargetModel)
    .max(32)
    .optional()
    .meta({
      'x-kubernetes-validations': [
        {
          rule: 'self.all(t, has(t.weight)) || self.all(t, !has(t.weight))',
          message: 'weights must be set on all targetModels or on none',
        },
      ],
    }),
});
export type InferenceModelSpec = z.infer<typeof InferenceModelSpec>;

/** The model's priority: spec.priority, else its criticality's value, else 0. */
export function modelPriority(spec: Pick<InferenceModelSpec, 'priority' | 'criticality'>): number {
  return spec.priority ?? (spec.criticality ? CRITICALITY_PRIORITY[spec.criticality] : 0);
}

export const InferenceModelStatus = z.object({
  observedGeneration: z.int().min(0).optional(),
  conditions: Conditions.optional(),
});
export type InferenceModelStatus = z.infer<typeof InferenceModelStatus>;

export const InferenceModel = z.object({
  apiVersion: z.string(),
  kind: z.literal('InferenceModel'),
  metadata: ObjectMeta,
  spec: InferenceModelSpec,
  status: InferenceModelStatus.optional(),
});
export type InferenceModel = z.infer<typeof InferenceModel>;
