// Fuzzes InferencePool and InferenceModel specs through everything the operator does with them: the
// zod schemas (src/api), the desired-state builders (`kvroute render`), and the reconcilers against
// the in-memory API server, which, like a cluster without the CRD's validation, stores any spec. The
// samples in config/samples are mutated at random places: values of the wrong type, huge or negative
// numbers, unicode, fields removed or added. The contract: a spec either renders or is refused with a
// message naming the field; the reconciler never throws on it (a throw is a crash loop of retries)
// and answers an invalid one with a status condition carrying that message.

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KubernetesObject } from '@kubernetes/client-node';
import fc from 'fast-check';
import YAML from 'yaml';
import { InferenceModel } from '../api/inference-model.ts';
import { InferencePool } from '../api/inference-pool.ts';
import { describeIssues, GROUP_VERSION } from '../api/meta.ts';
import { resourcePath } from '../common/kube/kube-client.ts';
import { silentLogger } from '../common/log.ts';
import { fuzzParams, fuzzTimeout, readCorpus } from '../../test/support/fuzz.ts';
import { ModelReconciler } from './model/reconciler.ts';
import { PoolReconciler } from './pool/reconciler.ts';
import { RenderError, renderDocuments } from './render.ts';
import { OPTIONAL_APIS, staticServedApis } from './runtime/optional-apis.ts';
import { fakeCluster, servedApis, startPoolCaches } from './testing/cluster.ts';
import type { FakeKube } from './testing/fake-kube.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CORPUS = path.join(HERE, 'testdata', 'fuzz');
const SAMPLES = path.join(HERE, '..', '..', 'config', 'samples');

type Doc = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; spec: Record<string, unknown> };
const samples: Doc[] = fs
  .readdirSync(SAMPLES)
  .filter((f) => f.startsWith('inference') && f.endsWith('.yaml'))
  .sort()
  .map((f) => YAML.parse(fs.readFileSync(path.join(SAMPLES, f), 'utf8')) as Doc);
const poolSamples = samples.filter((d) => d.kind === 'InferencePool');
const modelSamples = samples.filter((d) => d.kind === 'InferenceModel');

/** Every path to a value inside `value` (objects and arrays included), the root first. */
function paths(value: unknown, at: Array<string | number> = []): Array<Array<string | number>> {
  const out = [at];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...paths(v, [...at, i])));
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...at, k]));
  return out;
}

type Edit =
  | { kind: 'set'; pick: number; value: unknown }
  | { kind: 'delete'; pick: number }
  | { kind: 'add'; pick: number; key: string; value: unknown };

/** A copy of `spec` with the edits applied at the picked paths (picks wrap around the path list). */
function mutate(spec: Record<string, unknown>, edits: Edit[]): Record<string, unknown> {
  let root = structuredClone(spec) as Record<string, unknown>;
  for (const e of edits) {
    const all = paths(root);
    const at = all[e.pick % all.length]!;
    if (at.length === 0) {
      if (e.kind === 'set' && e.value && typeof e.value === 'object' && !Array.isArray(e.value)) root = e.value as Record<string, unknown>;
      else if (e.kind === 'add') root[e.key] = structuredClone(e.value);
      continue;
    }
    const parent = at.slice(0, -1).reduce<unknown>((o, k) => (o as Record<string | number, unknown>)[k], root) as Record<
      string | number,
      unknown
    >;
    const last = at[at.length - 1]!;
    if (e.kind === 'set') parent[last] = structuredClone(e.value);
    else if (e.kind === 'delete') {
      if (Array.isArray(parent)) parent.splice(last as number, 1);
      else delete parent[last];
    } else {
      const target = parent[last];
      if (target && typeof target === 'object' && !Array.isArray(target))
        (target as Record<string, unknown>)[e.key] = structuredClone(e.value);
    }
  }
  return root;
}

/** Values a confused or hostile author might put anywhere. */
const oddValue = fc.oneof(
  fc.constantFrom(null, true, 0, -1, 1e308, -1e308, 2 ** 53 + 1, 0.5, '', ' ', '-1', '1e9', '0x10', 'NaN', '../..', 'a'.repeat(300)),
  fc.integer(),
  fc.double({ noNaN: true }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom('Ünïcode', '\u0000', '日本語', 'UPPER', 'has space', 'x'.repeat(64), 'a.b', 'a/b'),
  fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string({ maxLength: 8 }), fc.integer()), { maxKeys: 3 }),
  fc.constant({ name: 'x', port: 70000 }),
  fc.constant([{ number: 0 }, { number: 0 }]),
);
const edit: fc.Arbitrary<Edit> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('set' as const), pick: fc.nat(), value: oddValue }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('add' as const),
      pick: fc.nat(),
      key: fc.constantFrom('unknownField', 'replicas', 'name', '__proto__', 'port'),
      value: oddValue,
    }),
  },
);
const mutatedPool = fc.tuple(fc.constantFrom(...poolSamples), fc.array(edit, { minLength: 1, maxLength: 4 })).map(([doc, edits]) => ({
  ...doc,
  spec: mutate(doc.spec, edits),
}));
const mutatedModel = fc.tuple(fc.constantFrom(...modelSamples), fc.array(edit, { minLength: 1, maxLength: 4 })).map(([doc, edits]) => ({
  ...doc,
  spec: mutate(doc.spec, edits),
}));

const renderOptions = {
  namespace: 'default',
  defaultImage: 'kvroute:test',
  clusterDomain: 'cluster.local',
  apis: staticServedApis(OPTIONAL_APIS),
};

describe('InferencePool / InferenceModel specs under mutation (fast-check, fixed seed)', () => {
  it(
    'parse or fail with issues that name a field, and whatever parses renders without throwing',
    () => {
      fc.assert(
        fc.property(mutatedPool, fc.option(mutatedModel), (pool, model) => {
          for (const [schema, doc] of [[InferencePool, pool] as const, ...(model ? [[InferenceModel, model] as const] : [])]) {
            const parsed = schema.safeParse(doc);
            if (!parsed.success) {
              // Each issue names its field and what was expected there, not just zod's generic words.
              const text = describeIssues(parsed.error);
              expect(text).toMatch(/^(\(root\)|spec|metadata|apiVersion|kind)\b.*: \S/);
              expect(text).not.toMatch(/Invalid key in record/);
            }
          }
          try {
            const result = renderDocuments(
              [pool, ...(model ? [model] : [])].map((doc, index) => ({ file: 'fuzz.yaml', index, doc })),
              renderOptions,
            );
            expect(result.objects.length).toBeGreaterThan(0);
          } catch (err) {
            if (!(err instanceof RenderError)) throw err;
            for (const p of err.problems) expect(p).toMatch(/^fuzz\.yaml: document \d/);
          }
        }),
        fuzzParams(1500),
      );
    },
    fuzzTimeout(1500, 60_000),
  );
});

// ---- the reconcilers against the in-memory API server -------------------------------------------------

/** The fields a failed parse names, as describeIssues writes them. */
const issuePaths = (error: { issues: Array<{ path: PropertyKey[] }> }) =>
  error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: `);

type Obj = KubernetesObject & { metadata: NonNullable<KubernetesObject['metadata']>; status?: { conditions?: Condition[] } };
type Condition = { type: string; status: string; reason: string; message: string };

describe('reconcilers given mutated specs (in-memory API server, fast-check, fixed seed)', () => {
  let kube: FakeKube;
  let caches: Awaited<ReturnType<typeof startPoolCaches>>;
  let pools: PoolReconciler;
  let models: ModelReconciler;
  let n = 0;

  beforeAll(async () => {
    kube = await fakeCluster({ namespaces: ['fz'] });
    caches = await startPoolCaches(kube);
    const now = () => new Date('2026-01-01T00:00:00Z');
    pools = new PoolReconciler({
      client: kube,
      caches,
      log: silentLogger,
      desired: { defaultImage: 'kvroute:test', clusterDomain: 'cluster.local', gatewayNamespaces: new Set<string>() },
      apis: servedApis(kube),
      now,
    });
    models = new ModelReconciler({ client: kube, pools: caches.pools, models: caches.models, log: silentLogger, now });
  });
  afterAll(async () => {
    await caches?.stop();
  });

  /** Creates the object, waits for the caches to see it, reconciles, and returns it as stored afterwards. */
  async function reconcileOnce(doc: Doc, kind: 'InferencePool' | 'InferenceModel'): Promise<Obj> {
    const name = `${kind === 'InferencePool' ? 'p' : 'm'}${n++}`;
    const cache = kind === 'InferencePool' ? caches.pools : caches.models;
    await kube.create({ ...doc, metadata: { name, namespace: 'fz' } } as never);
    const deadline = Date.now() + 5_000;
    while (!cache.get(name, 'fz')) {
      if (Date.now() > deadline) throw new Error(`the cache never saw ${kind} ${name}`);
      await new Promise((r) => setTimeout(r, 2));
    }
    if (kind === 'InferencePool') await pools.reconcile(`fz/${name}`);
    else await models.reconcile(`fz/${name}`);
    return kube.peek<Obj>(resourcePath(GROUP_VERSION, kind, 'fz', name))!;
  }

  it(
    'never throws on a pool spec, and answers an invalid one with Degraded InvalidSpec naming the field',
    async () => {
      await fc.assert(
        fc.asyncProperty(mutatedPool, async (pool) => {
          const stored = await reconcileOnce(pool, 'InferencePool');
          const parsed = InferencePool.safeParse({ ...pool, metadata: stored.metadata });
          if (!parsed.success) {
            const degraded = stored.status?.conditions?.find((c) => c.type === 'Degraded');
            expect(degraded).toMatchObject({ status: 'True', reason: 'InvalidSpec' });
            for (const field of issuePaths(parsed.error)) expect(degraded!.message).toContain(field);
          }
        }),
        fuzzParams(60),
      );
    },
    fuzzTimeout(60, 120_000),
  );

  it(
    'never throws on a model spec, and answers an invalid one with Accepted False InvalidSpec naming the field',
    async () => {
      await fc.assert(
        fc.asyncProperty(mutatedModel, async (model) => {
          const stored = await reconcileOnce(model, 'InferenceModel');
          const parsed = InferenceModel.safeParse({ ...model, metadata: stored.metadata });
          if (!parsed.success) {
            const accepted = stored.status?.conditions?.find((c) => c.type === 'Accepted');
            expect(accepted).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
            for (const field of issuePaths(parsed.error)) expect(accepted!.message).toContain(field);
          }
        }),
        fuzzParams(60),
      );
    },
    fuzzTimeout(60, 120_000),
  );

  describe('recorded corpus (testdata/fuzz)', () => {
    const corpus = readCorpus<{ about: string; doc: Doc; expect: { condition: string; reason: string; message: string } }>(CORPUS);
    it('has recorded inputs', () => expect(corpus.length).toBeGreaterThan(0));
    for (const { file, value } of corpus) {
      it(`${file}: ${value.about}`, async () => {
        const stored = await reconcileOnce(value.doc, value.doc.kind as 'InferencePool' | 'InferenceModel');
        const c = stored.status?.conditions?.find((x) => x.type === value.expect.condition);
        expect(c).toMatchObject({ reason: value.expect.reason });
        expect(c!.message).toMatch(new RegExp(value.expect.message));
      });
    }
  });
});
