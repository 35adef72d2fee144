// The InferenceModel custom resource: a model name clients send, the pool that serves it, how critical
// its traffic is, and the base model or LoRA adapters it is split across.

import { z } from 'zod';
import { Conditions, ObjectMeta } from './meta.ts';

export const TargetModel = z.object({
  name: z.string().min(1).max(512),
  weight: z.int().min(0).max(1_000_000).optional(),
});

export const InferenceModelSpec = z.object({
  modelName: z
    .string()
    .min(1)
    .max(512)
    .meta({ 'x-kubernetes-validations': [{ rule: 'self == oldSelf', message: 'modelName is immutable' }] }),
  poolRef: z.object({ name: z.string().min(1).max(253) }),
  criticality: z.enum(['Critical', 'Standard', 'Sheddable']).default('Standard'),
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
