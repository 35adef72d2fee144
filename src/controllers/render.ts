// `kvroute render` without a cluster: turns InferencePool and InferenceModel documents (plus any GIE
// InferencePools a pool's spec.poolRef names) into every object the operator would apply for them,
// through the same pure builders the reconciler uses. An invalid document is reported by file,
// document index and field, with the messages the operator writes into a pool's status.

import type { z } from 'zod';
import { InferenceModel } from '../api/inference-model.ts';
import { InferencePool } from '../api/inference-pool.ts';
import { API_GROUP, API_VERSION, describeIssues } from '../api/meta.ts';
import { resolveModels } from './model/resolve.ts';
import { desiredPoolObjects, type DesiredObject, type DesiredOptions } from './pool/desired.ts';
import { resolveSelection } from './pool/selection.ts';
import { GIE_INFERENCE_POOL_API } from './runtime/optional-apis.ts';

/** One YAML document of one input file. */
export interface RenderDocument {
  file: string;
  /** 0-based position of the document in its file. */
  index: number;
  doc: unknown;
}

export interface RenderOptions extends Omit<DesiredOptions, 'selection'> {
  /** Namespace of documents that name none (kubectl's default namespace). */
  namespace: string;
}

/** An object to print, with where it came from (for a `# Source:` comment). */
interface RenderedObject {
  source: string;
  object: DesiredObject;
}

export interface RenderResult {
  objects: RenderedObject[];
  /** What the operator would report instead of applying (a missing API, a rejected model): for stderr. */
  notes: string[];
}

/** Every problem with the input, one per line, each naming file, document and field. */
export class RenderError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid input:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.problems = problems;
  }
}

/**
 * The pool's uid only exists in a cluster, and an owner reference with a made-up one would have the
 * garbage collector delete the object: builders get this placeholder, and owner references are left out
 * of the output (the operator adds them when it applies).
 */
const PLACEHOLDER_UID = 'kvroute-render';
const KVROUTE_API_VERSION = `${API_GROUP}/${API_VERSION}`;
const GIE_API_VERSION = `${GIE_INFERENCE_POOL_API.group}/${GIE_INFERENCE_POOL_API.version}`;

interface Located<T> {
  at: string;
  value: T;
}

const where = (d: RenderDocument, what?: string) => `${d.file}: document ${d.index + 1}${what ? ` (${what})` : ''}`;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function withoutOwnerReferences(obj: DesiredObject): DesiredObject {
  const metadata = { ...(obj.metadata as DesiredObject['metadata'] & { ownerReferences?: unknown }) };
  delete metadata.ownerReferences;
  return { ...obj, metadata };
}

/** Objects for the pools in `documents`; throws a RenderError listing every invalid document. */
export function renderDocuments(documents: readonly RenderDocument[], options: RenderOptions): RenderResult {
  const problems: string[] = [];
  const pools: Located<InferencePool>[] = [];
  const models: Located<InferenceModel>[] = [];
  const giePools = new Map<string, unknown>();

  const parse = <S extends z.ZodType>(schema: S, d: RenderDocument, kind: string): z.output<S> | undefined => {
    const doc = d.doc as Record<string, unknown>;
    const meta = isObject(doc.metadata) ? doc.metadata : {};
    const name = typeof meta.name === 'string' ? meta.name : '(unnamed)';
    // As the API server would: the default namespace, and a uid (see PLACEHOLDER_UID).
    const filled = { ...doc, metadata: { namespace: options.namespace, ...meta, uid: PLACEHOLDER_UID } };
    const r = schema.safeParse(filled);
    if (!r.success) {
      problems.push(`${where(d, `${kind} ${name}`)}: ${describeIssues(r.error)}`);
      return undefined;
    }
    return r.data;
  };

  for (const d of documents) {
    if (d.doc === null || d.doc === undefined) continue; // an empty document (a trailing ---)
    if (!isObject(d.doc)) {
      problems.push(`${where(d)}: expected a Kubernetes object (a mapping with apiVersion and kind)`);
      continue;
    }
    const { apiVersion, kind } = d.doc;
    if (apiVersion === KVROUTE_API_VERSION && kind === 'InferencePool') {
      const pool = parse(InferencePool, d, 'InferencePool');
      if (pool) pools.push({ at: where(d, `InferencePool ${pool.metadata.name}`), value: pool });
    } else if (apiVersion === KVROUTE_API_VERSION && kind === 'InferenceModel') {
      const model = parse(InferenceModel, d, 'InferenceModel');
      if (model) models.push({ at: where(d, `InferenceModel ${model.metadata.name}`), value: model });
    } else if (apiVersion === GIE_API_VERSION && kind === 'InferencePool') {
      const meta = isObject(d.doc.metadata) ? d.doc.metadata : {};
      giePools.set(`${typeof meta.namespace === 'string' ? meta.namespace : options.namespace}/${String(meta.name)}`, d.doc);
    } else if (typeof apiVersion === 'string' && apiVersion.startsWith('kustomize.config.k8s.io/')) {
      continue; // a kustomization.yaml in a directory given with -f
    } else {
      problems.push(
        `${where(d)}: ${String(apiVersion)} ${String(kind)} is not an InferencePool or InferenceModel (${KVROUTE_API_VERSION}) nor a GIE InferencePool (${GIE_API_VERSION})`,
      );
    }
  }

  const nsOf = (o: { metadata: { namespace?: string | undefined } }) => o.metadata.namespace ?? options.namespace;
  const seen = new Map<string, string>();
  for (const p of pools) {
    const key = `${nsOf(p.value)}/${p.value.metadata.name}`;
    const first = seen.get(key);
    if (first) problems.push(`${p.at}: metadata.name: InferencePool ${key} is already defined at ${first}`);
    else seen.set(key, p.at);
  }

  const notes: string[] = [];
  const objects: RenderedObject[] = [];
  for (const { at, value: pool } of pools) {
    const ns = nsOf(pool);
    const resolved = resolveSelection(pool, (n) => giePools.get(`${ns}/${n}`));
    if ('problem' in resolved) {
      const hint = resolved.problem.reason === 'PoolRefNotFound' ? `; pass the ${GIE_API_VERSION} InferencePool with -f` : '';
      problems.push(`${at}: ${resolved.problem.message}${hint}`);
      continue;
    }
    const inNamespace = models.filter((m) => nsOf(m.value) === ns).map((m) => m.value);
    const resolution = resolveModels(inNamespace, (n) => seen.has(`${ns}/${n}`));
    const accepted = inNamespace.filter((m) => m.spec.poolRef.name === pool.metadata.name && resolution.get(m.metadata.name)?.accepted);
    const desired = desiredPoolObjects(pool, accepted, { ...options, selection: resolved.selection });
    for (const o of desired.apply) objects.push({ source: at, object: withoutOwnerReferences(o) });
    const name = `InferencePool ${ns}/${pool.metadata.name}`;
    if (desired.missingApis.length)
      notes.push(`${name}: not rendered, as the API is not among --api-versions: ${desired.missingApis.join(', ')}`);
    if (desired.gatewayNotAllowed)
      notes.push(
        `${name}: spec.gateway.namespace "${desired.gatewayNotAllowed}" is not among --gateway-namespaces; nothing is rendered there`,
      );
  }
  for (const { at, value: m } of models) {
    const r = resolveModels(
      models.filter((x) => nsOf(x.value) === nsOf(m)).map((x) => x.value),
      (n) => seen.has(`${nsOf(m)}/${n}`),
    ).get(m.metadata.name);
    const rejected = r?.conditions.find((c) => c.type === 'Accepted' && c.status === 'False');
    if (rejected) notes.push(`${at}: not routed: ${rejected.message}`);
  }
  if (problems.length) throw new RenderError(problems);
  return { objects, notes };
}
