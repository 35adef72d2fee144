// CustomResourceDefinitions built from the zod schemas: converts zod's OpenAPI 3.0 JSON Schema into a
// Kubernetes structural schema (no $ref, no anyOf outside int-or-string, no additionalProperties next
// to properties) and adds the status subresource, printer columns and short names.

import { z } from 'zod';
import { API_GROUP, API_VERSION } from './meta.ts';
import { InferenceModelSpec, InferenceModelStatus } from './inference-model.ts';
import { InferencePoolSpec, InferencePoolStatus } from './inference-pool.ts';

export type JsonSchema = { [key: string]: unknown };

const SAFE_INT = Number.MAX_SAFE_INTEGER;

/** Argo CD's sync-wave annotation (argocd.argoproj.io/sync-wave); CRDs take wave -1. */
const ARGOCD_SYNC_WAVE = 'argocd.argoproj.io/sync-wave';

/** Rewrites one JSON Schema node (and its children) into the structural subset Kubernetes accepts. */
export function toStructural(node: JsonSchema, path = '$'): JsonSchema {
  if ('$ref' in node || 'oneOf' in node || 'allOf' in node || 'not' in node) {
    throw new Error(`${path}: $ref, oneOf, allOf and not are not structural; inline the schema`);
  }
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    switch (key) {
      case '$schema':
      case 'propertyNames':
        break;
      case 'anyOf':
        if (node['x-kubernetes-int-or-string'] !== true) throw new Error(`${path}: anyOf is only allowed for int-or-string`);
        break;
      case 'minimum':
        if (value !== -SAFE_INT) out[key] = value;
        break;
      case 'maximum':
        if (value !== SAFE_INT) out[key] = value;
        break;
      case 'additionalProperties':
        if (node['x-kubernetes-preserve-unknown-fields'] === true) break;
        if (typeof value === 'object' && value !== null) out[key] = toStructural(value as JsonSchema, `${path}.*`);
        break;
      case 'properties': {
        const props: JsonSchema = {};
        for (const [name, child] of Object.entries(value as Record<string, JsonSchema>))
          props[name] = toStructural(child, `${path}.${name}`);
        out[key] = props;
        break;
      }
      case 'items':
        out[key] = toStructural(value as JsonSchema, `${path}[]`);
        break;
      default:
        out[key] = value;
    }
  }
  if (out.type === undefined && out['x-kubernetes-int-or-string'] !== true && out['x-kubernetes-preserve-unknown-fields'] !== true) {
    throw new Error(`${path}: every node needs a type`);
  }
  return out;
}

function schemaOf(schema: z.ZodType): JsonSchema {
  return toStructural(z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input', unrepresentable: 'throw' }) as JsonSchema);
}

interface CrdInput {
  kind: string;
  plural: string;
  shortNames: string[];
  categories: string[];
  spec: z.ZodType;
  status: z.ZodType;
  printerColumns: { name: string; type: string; jsonPath: string; description?: string; priority?: number }[];
}

function buildCrd(input: CrdInput): JsonSchema {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${input.plural}.${API_GROUP}`,
      // Argo CD applies lower waves first and waits for them: the CRDs land before any CR that needs them.
      annotations: { [ARGOCD_SYNC_WAVE]: '-1' },
    },
    spec: {
      group: API_GROUP,
      names: {
        kind: input.kind,
        listKind: `${input.kind}List`,
        plural: input.plural,
        singular: input.kind.toLowerCase(),
        shortNames: input.shortNames,
        categories: input.categories,
      },
      scope: 'Namespaced',
      versions: [
        {
          name: API_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [...input.printerColumns, { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: `${input.kind} (${API_GROUP}/${API_VERSION}); generated from src/api by npm run generate`,
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec: schemaOf(input.spec),
                status: schemaOf(input.status),
              },
              required: ['spec'],
            },
          },
        },
      ],
    },
  };
}

const inferencePoolCrd = (): JsonSchema =>
  buildCrd({
    kind: 'InferencePool',
    plural: 'inferencepools',
    shortNames: ['kvpool'],
    categories: ['kvroute'],
    spec: InferencePoolSpec,
    status: InferencePoolStatus,
    printerColumns: [
      { name: 'Model', type: 'string', jsonPath: '.spec.model.name' },
      { name: 'Replicas', type: 'integer', jsonPath: '.status.replicas' },
      { name: 'Ready', type: 'integer', jsonPath: '.status.readyReplicas' },
      { name: 'Status', type: 'string', jsonPath: ".status.conditions[?(@.type=='Ready')].status" },
    ],
  });

const inferenceModelCrd = (): JsonSchema =>
  buildCrd({
    kind: 'InferenceModel',
    plural: 'inferencemodels',
    shortNames: ['kvmodel'],
    categories: ['kvroute'],
    spec: InferenceModelSpec,
    status: InferenceModelStatus,
    printerColumns: [
      { name: 'Model Name', type: 'string', jsonPath: '.spec.modelName' },
      { name: 'Pool', type: 'string', jsonPath: '.spec.poolRef.name' },
      { name: 'Priority', type: 'integer', jsonPath: '.spec.priority' },
      { name: 'Accepted', type: 'string', jsonPath: ".status.conditions[?(@.type=='Accepted')].status" },
    ],
  });

/** Every CRD the operator owns, keyed by the file name it is written to under crds/. */
export function allCrds(): Record<string, JsonSchema> {
  return {
    'inference.kvroute.io_inferencepools.yaml': inferencePoolCrd(),
    'inference.kvroute.io_inferencemodels.yaml': inferenceModelCrd(),
  };
}
