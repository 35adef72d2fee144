import { describe, it, expect } from '@jest/globals';
import fs from 'node:fs';
import { allCrds, toStructural, type JsonSchema } from './crd.ts';
import { renderCrds } from './generate.ts';
import { InferencePool } from './inference-pool.ts';

function walk(node: JsonSchema, visit: (n: JsonSchema, path: string) => void, path = '$'): void {
  visit(node, path);
  for (const [name, child] of Object.entries((node.properties ?? {}) as Record<string, JsonSchema>)) walk(child, visit, `${path}.${name}`);
  if (node.items) walk(node.items as JsonSchema, visit, `${path}[]`);
  if (typeof node.additionalProperties === 'object') walk(node.additionalProperties as JsonSchema, visit, `${path}.*`);
}

describe('generated CRDs', () => {
  it('are structural: every node typed, no $ref, no anyOf, no additionalProperties beside properties', () => {
    for (const crd of Object.values(allCrds())) {
      const schema = ((crd.spec as JsonSchema).versions as JsonSchema[])[0]!.schema as { openAPIV3Schema: JsonSchema };
      walk(schema.openAPIV3Schema, (n, path) => {
        expect({ path, typed: n.type !== undefined || n['x-kubernetes-int-or-string'] === true }).toEqual({ path, typed: true });
        expect({ path, bad: ['$ref', 'anyOf', 'oneOf', 'allOf'].filter((k) => k in n) }).toEqual({ path, bad: [] });
        if (n.properties) expect({ path, ap: n.additionalProperties }).toEqual({ path, ap: undefined });
      });
    }
  });

  it('carry the defaults zod applies, so kubectl and the operator see the same values', () => {
    const crd = allCrds()['inference.kvroute.io_inferencepools.yaml']!;
    const spec = (((crd.spec as JsonSchema).versions as JsonSchema[])[0]!.schema as { openAPIV3Schema: JsonSchema }).openAPIV3Schema.properties as Record<string, JsonSchema>;
    const server = ((spec.spec!.properties as Record<string, JsonSchema>).modelServer!.properties as Record<string, JsonSchema>);
    const parsed = InferencePool.parse({ apiVersion: 'x', kind: 'InferencePool', metadata: { name: 'p' }, spec: { model: { name: 'm' }, modelServer: { image: 'i' } } });
    expect(server.blockSize!.default).toBe(parsed.spec.modelServer!.blockSize);
    expect(server.gpuMemoryUtilization!.default).toBe(0.7);
    expect(server.kvCacheDtype!.default).toBe('auto');
  });

  it('match the committed crds/ files, kustomization included (npm run generate keeps them current)', () => {
    for (const [file, text] of Object.entries(renderCrds())) {
      expect(fs.readFileSync(new URL(`../../crds/${file}`, import.meta.url), 'utf8')).toBe(text);
    }
  });

  it('refuses schemas Kubernetes would not accept as structural, naming the field', () => {
    expect(() => toStructural({ type: 'object', properties: { x: { anyOf: [{ type: 'string' }, { type: 'integer' }] } } })).toThrow('$.x: anyOf');
    expect(() => toStructural({ type: 'object', properties: { y: {} } })).toThrow('$.y: every node needs a type');
  });
});
