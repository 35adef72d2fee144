import { describe, it, expect } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { allCrds, toStructural, type JsonSchema } from './crd.ts';
import { CRDS_DIR, KUSTOMIZE_CRD_DIR, renderCrds, renderTree, syncTree } from './generate.ts';
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
    const spec = (((crd.spec as JsonSchema).versions as JsonSchema[])[0]!.schema as { openAPIV3Schema: JsonSchema }).openAPIV3Schema
      .properties as Record<string, JsonSchema>;
    const server = (spec.spec!.properties as Record<string, JsonSchema>).modelServer!.properties as Record<string, JsonSchema>;
    const parsed = InferencePool.parse({
      apiVersion: 'x',
      kind: 'InferencePool',
      metadata: { name: 'p' },
      spec: { model: { name: 'm' }, modelServer: { image: 'i' } },
    });
    expect(server.blockSize!.default).toBe(parsed.spec.modelServer!.blockSize);
    expect(server.gpuMemoryUtilization!.default).toBe(0.7);
    expect(server.kvCacheDtype!.default).toBe('auto');
  });

  it('match the committed crds/ and config/crd/ files (npm run generate keeps them current; check:generated fails otherwise)', () => {
    const root = fileURLToPath(new URL('../..', import.meta.url));
    expect(syncTree(root, renderTree(), true)).toEqual([]);
  });

  it('leave crds/ holding only CRDs, so kubectl apply -f crds/ applies every file, and give kustomize its own copies under config/crd', () => {
    const tree = renderTree();
    for (const text of Object.values(tree[CRDS_DIR]!)) expect(YAML.parse(text).kind).toBe('CustomResourceDefinition');
    expect(tree[`${KUSTOMIZE_CRD_DIR}/bases`]).toEqual(tree[CRDS_DIR]);
    const kustomization = YAML.parse(tree[KUSTOMIZE_CRD_DIR]!['kustomization.yaml']!) as { resources: string[] };
    expect(kustomization.resources).toEqual(Object.keys(renderCrds()).map((f) => `bases/${f}`));
  });

  it('--check names stale and unexpected files, and a write makes the tree current', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-crds-'));
    try {
      expect(syncTree(root, renderTree(), true)).toContain('crds/inference.kvroute.io_inferencepools.yaml');
      expect(syncTree(root, renderTree(), false)).toEqual([]);
      fs.writeFileSync(path.join(root, 'crds/kustomization.yaml'), 'resources: []\n');
      fs.appendFileSync(path.join(root, 'config/crd/bases/inference.kvroute.io_inferencemodels.yaml'), '# edited\n');
      expect(syncTree(root, renderTree(), true).sort()).toEqual([
        'config/crd/bases/inference.kvroute.io_inferencemodels.yaml',
        'crds/kustomization.yaml',
      ]);
      syncTree(root, renderTree(), false);
      expect(syncTree(root, renderTree(), true)).toEqual([]);
      expect(fs.existsSync(path.join(root, 'crds/kustomization.yaml'))).toBe(false);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it('carry Argo CD sync-wave -1, so an Application applies them before any pool or model', () => {
    for (const crd of Object.values(allCrds())) {
      expect((crd.metadata as { annotations?: Record<string, string> }).annotations?.['argocd.argoproj.io/sync-wave']).toBe('-1');
    }
  });

  it('refuses schemas Kubernetes would not accept as structural, naming the field', () => {
    expect(() => toStructural({ type: 'object', properties: { x: { anyOf: [{ type: 'string' }, { type: 'integer' }] } } })).toThrow(
      '$.x: anyOf',
    );
    expect(() => toStructural({ type: 'object', properties: { y: {} } })).toThrow('$.y: every node needs a type');
  });
});
