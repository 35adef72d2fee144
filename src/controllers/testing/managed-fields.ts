// Server-side apply's field ownership as the in-memory API server models it: which manager owns which
// leaf fields of an object, how an apply merges into the live object and drops the fields its manager
// stopped sending, how an ordinary write takes the fields it changes, and the managedFields it reports.
// A simple model of structured-merge-diff; fake-kube.ts lists where it is simpler than the real one.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** A field path: segments `f:<key>` (a map key) or `v:<json>` (an item of a set list), joined by SEP. */
type FieldPath = string;
const SEP = '\u001f';

/**
 * Lists merged item by item, as the API server merges `x-kubernetes-list-type: set` lists. Every other
 * list is atomic: whoever sent it owns it whole, and an apply replaces it.
 */
const SET_LISTS = new Set([['f:metadata', 'f:finalizers'].join(SEP)]);

export interface ManagerKey {
  manager: string;
  operation: 'Apply' | 'Update';
  /** '' for the main resource, 'status' for the /status subresource. */
  subresource: string;
}

export interface ManagedFieldsEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time: string;
  fieldsType: 'FieldsV1';
  fieldsV1: Record<string, unknown>;
  subresource?: string;
}

/** Another manager owns fields this apply would change; the message names them as the API server does. */
export class ApplyConflictError extends Error {}

const isObject = (v: Json | undefined): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);
const json = (v: Json | undefined) => JSON.stringify(v);
export const clone = <T>(v: T): T => structuredClone(v);

const overlaps = (a: FieldPath, b: FieldPath) => a === b || a.startsWith(b + SEP) || b.startsWith(a + SEP);

/** Metadata the API server sets: a writer's body never sets it, and nobody owns it. */
export const SERVER_METADATA_FIELDS = [
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'managedFields',
  'selfLink',
] as const;

/** Fields the API server sets or that identify the object: nobody owns them. */
const SYSTEM_FIELDS = new Set([
  'f:apiVersion',
  'f:kind',
  ...['name', 'namespace', ...SERVER_METADATA_FIELDS, 'generateName'].map((f) => `f:metadata${SEP}f:${f}`),
]);

/** The leaf field paths of a value: map keys recursed, set-list items one by one, everything else whole. */
function fieldPaths(value: JsonObject, prefix = '', out = new Set<FieldPath>()): Set<FieldPath> {
  for (const [key, v] of Object.entries(value)) {
    const path = prefix ? `${prefix}${SEP}f:${key}` : `f:${key}`;
    if (SYSTEM_FIELDS.has(path) || v === undefined) continue;
    if (isObject(v) && Object.keys(v).length > 0) fieldPaths(v, path, out);
    else if (Array.isArray(v) && SET_LISTS.has(path)) for (const item of v) out.add(`${path}${SEP}v:${json(item)}`);
    else out.add(path);
  }
  return out;
}

function valueAt(obj: JsonObject | undefined, path: FieldPath): Json | undefined {
  let cur: Json | undefined = obj;
  for (const seg of path.split(SEP)) {
    if (seg.startsWith('f:')) {
      if (!isObject(cur)) return undefined;
      cur = cur[seg.slice(2)];
    } else {
      if (!Array.isArray(cur)) return undefined;
      const item = seg.slice(2);
      cur = cur.find((x) => json(x) === item);
    }
  }
  return cur;
}

function removeAt(obj: JsonObject, path: FieldPath): void {
  const segs = path.split(SEP);
  let parent: Json | undefined = obj;
  for (const seg of segs.slice(0, -1)) parent = isObject(parent) ? parent[seg.slice(2)] : undefined;
  const last = segs[segs.length - 1]!;
  if (last.startsWith('f:') && isObject(parent)) delete parent[last.slice(2)];
  else if (last.startsWith('v:') && Array.isArray(parent)) {
    const at = parent.findIndex((x) => json(x) === last.slice(2));
    if (at >= 0) parent.splice(at, 1);
  }
}

/** Merges an applied configuration into the live object: maps key by key, set lists as a union, other values replaced. */
function merge(live: JsonObject, config: JsonObject, prefix = ''): void {
  for (const [key, v] of Object.entries(config)) {
    const path = prefix ? `${prefix}${SEP}f:${key}` : `f:${key}`;
    const cur = live[key];
    if (isObject(v) && isObject(cur)) merge(cur, v, path);
    else if (Array.isArray(v) && Array.isArray(cur) && SET_LISTS.has(path)) {
      for (const item of v) if (!cur.some((x) => json(x) === json(item))) cur.push(clone(item));
    } else live[key] = clone(v);
  }
}

function toFieldsV1(paths: Iterable<FieldPath>): Record<string, unknown> {
  const root: Record<string, Record<string, unknown>> = {};
  for (const p of [...paths].sort()) {
    let node: Record<string, unknown> = root;
    for (const seg of p.split(SEP)) node = (node[seg] ??= {}) as Record<string, unknown>;
  }
  return root;
}

const idOf = (k: ManagerKey) => `${k.manager}\u0000${k.operation}\u0000${k.subresource}`;

interface Entry {
  key: ManagerKey;
  fields: Set<FieldPath>;
  time: string;
}

/** The field owners of one object. Objects passed in are whole; system fields are never owned. */
export class FieldOwners {
  private entries = new Map<string, Entry>();

  copy(): FieldOwners {
    const c = new FieldOwners();
    for (const [id, e] of this.entries) c.entries.set(id, { key: e.key, fields: new Set(e.fields), time: e.time });
    return c;
  }

  /** Identity of the ownership state (not its timestamps), to tell a no-op write from a real one. */
  fingerprint(): string {
    return json([...this.entries].map(([id, e]) => [id, [...e.fields].sort()]));
  }

  /**
   * Server-side apply of `config` by `key` onto `live` (mutated): conflicts with other owners of fields
   * whose value would change fail unless `force` (which takes them over); fields the manager applied
   * before and no longer sends are removed unless someone else owns them too; the rest is merged.
   */
  apply(live: JsonObject, config: JsonObject, key: ManagerKey, force: boolean, time: string): void {
    const id = idOf(key);
    const sent = fieldPaths(config);
    const conflicts: string[] = [];
    for (const [otherId, other] of this.entries) {
      if (otherId === id) continue;
      for (const owned of [...other.fields]) {
        for (const q of sent) {
          if (!overlaps(owned, q) || json(valueAt(live, q)) === json(valueAt(config, q))) continue;
          if (force) other.fields.delete(owned);
          else
            conflicts.push(
              `conflict with "${other.key.manager}"${other.key.operation === 'Update' ? ' using ' + other.key.operation : ''}: .${owned
                .split(SEP)
                .map((s) => s.slice(2))
                .join('.')}`,
            );
          break;
        }
      }
    }
    if (conflicts.length) throw new ApplyConflictError(`Apply failed with ${conflicts.length} conflict(s): ${conflicts.join('; ')}`);
    const before = this.entries.get(id)?.fields ?? new Set<FieldPath>();
    const heldElsewhere = (p: FieldPath) =>
      [...sent].some((q) => overlaps(p, q)) ||
      [...this.entries].some(([otherId, e]) => otherId !== id && [...e.fields].some((o) => overlaps(o, p)));
    for (const p of before) if (!sent.has(p) && !heldElsewhere(p)) removeAt(live, p);
    merge(live, config);
    this.set(id, key, sent, time);
    this.prune(live);
  }

  /** An ordinary write (create, update, patch) by `key`: it takes ownership of every field it added or changed. */
  update(before: JsonObject | undefined, after: JsonObject, key: ManagerKey, time: string): void {
    const id = idOf(key);
    const old = before ? fieldPaths(before) : new Set<FieldPath>();
    const changed = [...fieldPaths(after)].filter((p) => !old.has(p) || json(valueAt(before, p)) !== json(valueAt(after, p)));
    if (changed.length === 0) {
      this.prune(after);
      return;
    }
    for (const [otherId, other] of this.entries) {
      if (otherId === id) continue;
      for (const owned of [...other.fields]) if (changed.some((p) => overlaps(owned, p))) other.fields.delete(owned);
    }
    this.set(id, key, new Set([...(this.entries.get(id)?.fields ?? []), ...changed]), time);
    this.prune(after);
  }

  /** The object's metadata.managedFields as the API server reports them. */
  managedFields(apiVersion: string): ManagedFieldsEntry[] {
    return [...this.entries.values()].map((e) => ({
      manager: e.key.manager,
      operation: e.key.operation,
      apiVersion,
      time: e.time,
      fieldsType: 'FieldsV1',
      fieldsV1: toFieldsV1(e.fields),
      ...(e.key.subresource ? { subresource: e.key.subresource } : {}),
    }));
  }

  private set(id: string, key: ManagerKey, fields: Set<FieldPath>, time: string): void {
    this.entries.delete(id);
    if (fields.size > 0) this.entries.set(id, { key, fields, time });
  }

  /** No one owns a field that is not there; a manager left with no field is no longer listed. */
  private prune(obj: JsonObject): void {
    for (const [id, e] of this.entries) {
      for (const p of [...e.fields]) if (valueAt(obj, p) === undefined) e.fields.delete(p);
      if (e.fields.size === 0) this.entries.delete(id);
    }
  }
}
