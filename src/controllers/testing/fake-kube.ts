// An in-memory Kubernetes API server for unit tests, in the spirit of controller-runtime's fake client:
// it implements KubeApi with the API-server behaviour the operator relies on (resource versions, typed
// 404/409/403/422 errors, server-side apply per field manager, the status subresource, finalizers,
// namespace lifecycle, CRDs that start serving their kinds) and feeds watches to in-memory informers.
//
// Where it is simpler than a real API server (the real-apiserver tests under e2e/ cover these):
// - Server-side apply: ownership is tracked per leaf field and manager; an apply replaces the fields its
//   manager sent, removes the ones it sent before and no longer sends (unless another manager owns them
//   too), and conflicts only where another manager owns a field whose value would change. Maps merge
//   key by key, metadata.finalizers merges as a set, and every other list is atomic (real associative
//   lists, such as containers keyed by name, merge item by item). No defaulting or schema validation:
//   objects are stored as sent. managedFields in a request body are ignored.
// - metadata.generation starts at 1 for every kind and moves when anything outside metadata and status
//   changes (and when deletion starts), also for kinds that have no generation on a real server.
// - No garbage collector: ownerReferences are stored but deleting an owner deletes nothing else, and
//   propagationPolicy is ignored. No namespace controller: deleting a Namespace only marks it
//   Terminating (deletionTimestamp, status.phase) and it stays. No controllers at all: Deployments get
//   no status and Pods no IP until a test writes them, as the deployment controller or kubelet would.
// - A CRD serves its kinds as soon as it is created (Established at once); deleting it deletes its
//   objects. Objects of a CRD are stored once and read back in the version asked for, as a CRD without
//   a conversion webhook is; there is no conversion.
// - Watch events are delivered synchronously, before the write returns, so in-memory informers are
//   never stale; there is no watch cache, no bookmarks and no 410 Gone.
// - No authentication, authorization or admission beyond the namespace lifecycle; no RBAC escalation check.
// - Discovery serves only GET /api/v1 and /apis/<group>/<version> (the kinds served there), not the group lists.

import {
  KubeApiError,
  resourcePath,
  type ApplyOptions,
  type KubeApi,
  type KubeObjectLike,
  type ObjectList,
  type RequestOptions,
} from '../../common/kube/kube-client.ts';
import { FakeInformer, type FakeInformerOptions } from './fake-informer.ts';
import {
  ApplyConflictError,
  FieldOwners,
  SERVER_METADATA_FIELDS,
  clone,
  type Json,
  type JsonObject,
  type ManagerKey,
} from './managed-fields.ts';
import { fieldSelector, labelSelector, type Selector } from './selectors.ts';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';
export type WatchHandler = (type: WatchEventType, obj: JsonObject) => void;

interface ResourceType {
  group: string;
  versions: string[];
  plural: string;
  kind: string;
  namespaced: boolean;
  /** Whether the kind has a /status subresource, which alone writes status. */
  status: boolean;
  /** The CRD that serves this type, if any. */
  crd?: string;
}

const NAMESPACES: ResourceType = { group: '', versions: ['v1'], plural: 'namespaces', kind: 'Namespace', namespaced: false, status: true };
const BUILT_IN: ResourceType[] = [
  NAMESPACES,
  { group: '', versions: ['v1'], plural: 'configmaps', kind: 'ConfigMap', namespaced: true, status: false },
  { group: '', versions: ['v1'], plural: 'services', kind: 'Service', namespaced: true, status: true },
  { group: '', versions: ['v1'], plural: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true, status: false },
  { group: '', versions: ['v1'], plural: 'secrets', kind: 'Secret', namespaced: true, status: false },
  { group: '', versions: ['v1'], plural: 'pods', kind: 'Pod', namespaced: true, status: true },
  { group: '', versions: ['v1'], plural: 'events', kind: 'Event', namespaced: true, status: false },
  { group: 'apps', versions: ['v1'], plural: 'deployments', kind: 'Deployment', namespaced: true, status: true },
  { group: 'rbac.authorization.k8s.io', versions: ['v1'], plural: 'roles', kind: 'Role', namespaced: true, status: false },
  { group: 'rbac.authorization.k8s.io', versions: ['v1'], plural: 'rolebindings', kind: 'RoleBinding', namespaced: true, status: false },
  { group: 'coordination.k8s.io', versions: ['v1'], plural: 'leases', kind: 'Lease', namespaced: true, status: false },
  { group: 'networking.k8s.io', versions: ['v1'], plural: 'networkpolicies', kind: 'NetworkPolicy', namespaced: true, status: false },
  {
    group: 'apiextensions.k8s.io',
    versions: ['v1'],
    plural: 'customresourcedefinitions',
    kind: 'CustomResourceDefinition',
    namespaced: false,
    status: true,
  },
];

interface Target {
  apiVersion: string;
  plural: string;
  namespace?: string;
  name?: string;
  subresource?: string;
}

interface Stored {
  obj: JsonObject;
  owners: FieldOwners;
}

/** One request as the fake saw it, for tests that assert what was (not) written. */
export interface FakeRequest {
  method: string;
  path: string;
  contentType?: string;
  query: Record<string, string | undefined>;
  body?: unknown;
}

/** Returns an error to fail the request with it (before the fake looks at it), or undefined to let it through. */
export type Reactor = (req: FakeRequest) => Error | undefined;

interface Watcher {
  apiVersion: string;
  group: string;
  plural: string;
  namespace?: string;
  labels: Selector;
  fields: Selector;
  handler: WatchHandler;
}

export interface FakeKubeOptions {
  /** Clock for creation and deletion timestamps, in ms; Date.now by default. */
  now?: () => number;
}

const APPLY_PATCH = 'application/apply-patch+yaml';
const JSON_PATCH = 'application/json-patch+json';
const MERGE_PATCH = 'application/merge-patch+json';

const groupOf = (apiVersion: string) => (apiVersion.includes('/') ? apiVersion.split('/')[0]! : '');
const versionOf = (apiVersion: string) => (apiVersion.includes('/') ? apiVersion.split('/')[1]! : apiVersion);
const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);
/** What travels over the wire: JSON, so undefined fields vanish. */
const wire = (v: unknown): JsonObject => JSON.parse(JSON.stringify(v ?? {})) as JsonObject;
const meta = (o: JsonObject): JsonObject => (isObject(o.metadata) ? o.metadata : (o.metadata = {}));
const finalizersOf = (o: JsonObject): string[] => (Array.isArray(meta(o).finalizers) ? (meta(o).finalizers as string[]) : []);
/** Everything but metadata and status: a change here moves metadata.generation. */
const specPart = (o: JsonObject) =>
  JSON.stringify(
    Object.entries(o)
      .filter(([k]) => k !== 'metadata' && k !== 'status' && k !== 'apiVersion' && k !== 'kind')
      .sort(),
  );

/** Parses a REST path the way the API server routes it, without knowing whether the resource exists. */
function parsePath(path: string): Target | undefined {
  const m = /^\/(?:api\/(v1)|apis\/([^/]+\/[^/]+))((?:\/[^/]+)*)\/?$/.exec(path.split('?')[0]!);
  if (!m) return undefined;
  const apiVersion = m[1] ?? m[2]!;
  const segs = m[3]!.split('/').filter(Boolean).map(decodeURIComponent);
  // namespaces/<name>/status is a Namespace's subresource; namespaces/<ns>/<plural>/... is a namespaced resource.
  const namespaced =
    segs[0] === 'namespaces' && segs.length >= 3 && !(segs.length === 3 && (segs[2] === 'status' || segs[2] === 'finalize'));
  const [plural, name, subresource, extra] = namespaced ? segs.slice(2) : segs;
  if (!plural || extra !== undefined) return undefined;
  return {
    apiVersion,
    plural,
    ...(namespaced ? { namespace: segs[1]! } : {}),
    ...(name ? { name } : {}),
    ...(subresource ? { subresource } : {}),
  };
}

export class FakeKube implements KubeApi {
  private readonly types = new Map<string, ResourceType>();
  private readonly objects = new Map<string, Stored>();
  private readonly watchers = new Set<Watcher>();
  private readonly typeListeners = new Set<() => void>();
  private readonly reactors: Reactor[] = [];
  private readonly now: () => number;
  private revision = 0;
  private serial = 0;
  /** Every request in order, for tests that assert what was (not) sent. */
  readonly requests: FakeRequest[] = [];

  constructor(options: FakeKubeOptions = {}) {
    this.now = options.now ?? Date.now;
    for (const t of BUILT_IN) this.types.set(`${t.group}/${t.plural}`, t);
  }

  // ---- KubeApi ---------------------------------------------------------------------------------------

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const req: FakeRequest = {
      method,
      path,
      query: options.query ?? {},
      ...(options.contentType ? { contentType: options.contentType } : {}),
      ...(options.body !== undefined ? { body: wire(options.body) } : {}),
    };
    this.requests.push(req);
    for (const react of this.reactors) {
      const err = react(req);
      if (err) throw err;
    }
    return this.serve(req) as T;
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  list<T>(path: string, selectors: { labelSelector?: string; fieldSelector?: string } = {}): Promise<ObjectList<T>> {
    return this.request('GET', path, { query: selectors });
  }

  apply<T>(obj: KubeObjectLike, options: ApplyOptions): Promise<T> {
    const { apiVersion, kind, metadata } = obj;
    if (!apiVersion || !kind || !metadata?.name) throw new Error('apply needs apiVersion, kind and metadata.name');
    const path = resourcePath(apiVersion, kind, metadata.namespace, metadata.name) + (options.subresource ? `/${options.subresource}` : '');
    return this.request<T>('PATCH', path, {
      query: { fieldManager: options.fieldManager, force: options.force ? 'true' : undefined },
      body: obj,
      contentType: APPLY_PATCH,
    });
  }

  create<T>(obj: KubeObjectLike): Promise<T> {
    return this.request<T>('POST', resourcePath(obj.apiVersion!, obj.kind!, obj.metadata?.namespace), { body: obj });
  }

  replace<T>(obj: KubeObjectLike): Promise<T> {
    return this.request<T>('PUT', resourcePath(obj.apiVersion!, obj.kind!, obj.metadata?.namespace, obj.metadata?.name), { body: obj });
  }

  async delete(path: string, preconditionUid?: string): Promise<boolean> {
    try {
      await this.request('DELETE', path, {
        body: { kind: 'DeleteOptions', apiVersion: 'v1', ...(preconditionUid ? { preconditions: { uid: preconditionUid } } : {}) },
      });
      return true;
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return false;
      throw err;
    }
  }

  // ---- test controls ---------------------------------------------------------------------------------

  /** Fails matching requests (a flaky network, a webhook refusing) until the returned function is called. */
  react(reactor: Reactor): () => void {
    this.reactors.push(reactor);
    return () => {
      const at = this.reactors.indexOf(reactor);
      if (at >= 0) this.reactors.splice(at, 1);
    };
  }

  /** The stored object at `path` as a GET would return it, read synchronously; undefined when absent. */
  peek<T = JsonObject>(path: string): T | undefined {
    const t = parsePath(path);
    const type = t && this.typeOf(t.apiVersion, t.plural);
    if (!t || !type || !t.name) return undefined;
    const s = this.objects.get(this.key(type, t.namespace, t.name));
    return s ? (this.render(s, t.apiVersion) as T) : undefined;
  }

  /** Streams changes of the collection at `path` that match the selectors; returns a function that stops it. */
  watch(path: string, selectors: { labelSelector?: string; fieldSelector?: string }, handler: WatchHandler): () => void {
    const t = parsePath(path);
    if (!t || t.name) throw new Error(`watch needs a collection path, got ${path}`);
    const w: Watcher = {
      apiVersion: t.apiVersion,
      group: groupOf(t.apiVersion),
      plural: t.plural,
      ...(t.namespace ? { namespace: t.namespace } : {}),
      labels: labelSelector(selectors.labelSelector),
      fields: fieldSelector(selectors.fieldSelector),
      handler,
    };
    this.watchers.add(w);
    return () => this.watchers.delete(w);
  }

  /** Called whenever the set of served kinds changes (a CRD created or deleted): informers retry their list. */
  onTypesChanged(listener: () => void): () => void {
    this.typeListeners.add(listener);
    return () => this.typeListeners.delete(listener);
  }

  /** Whether the fake serves a kind now (what API discovery would list), for a ServedApis stand-in. */
  serves(group: string, version: string, kind: string): boolean {
    return [...this.types.values()].some((t) => t.group === group && t.kind === kind && t.versions.includes(version));
  }

  /** An informer over this fake, for code that takes an InformerCache or SharedInformer. */
  informer<T>(options: FakeInformerOptions): FakeInformer<T> {
    return new FakeInformer<T>(this, options);
  }

  // ---- the server ------------------------------------------------------------------------------------

  private fail(req: FakeRequest, status: number, reason: string, message: string): never {
    throw new KubeApiError(status, reason, `${req.method} ${req.path.split('?')[0]}: ${status} ${message}`);
  }

  private typeOf(apiVersion: string, plural: string): ResourceType | undefined {
    const t = this.types.get(`${groupOf(apiVersion)}/${plural}`);
    return t && t.versions.includes(versionOf(apiVersion)) ? t : undefined;
  }

  private key(type: ResourceType, namespace: string | undefined, name: string): string {
    return `${type.group}/${type.plural}/${type.namespaced ? (namespace ?? '') : ''}/${name}`;
  }

  private timestamp(): string {
    return new Date(this.now()).toISOString().replace(/\.\d{3}Z$/, 'Z');
  }

  private qualified(type: ResourceType): string {
    return type.group ? `${type.plural}.${type.group}` : type.plural;
  }

  /** The object as the API server returns it: in the requested version, with its managedFields. */
  private render(s: Stored, apiVersion: string): JsonObject {
    const out = clone(s.obj);
    out.apiVersion = apiVersion;
    const managed = s.owners.managedFields(apiVersion);
    if (managed.length) meta(out).managedFields = managed as unknown as Json;
    return out;
  }

  private serve(req: FakeRequest): unknown {
    const discovery = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))\/?$/.exec(req.path.split('?')[0]!);
    if (discovery && req.method === 'GET') return this.discover(req, discovery[2] ?? '', discovery[1] ?? discovery[3]!);
    const t = parsePath(req.path);
    const type = t && this.typeOf(t.apiVersion, t.plural);
    if (!t || !type) return this.fail(req, 404, 'NotFound', 'the server could not find the requested resource');
    if (t.subresource !== undefined && !(t.subresource === 'status' && type.status)) {
      return this.fail(req, 404, 'NotFound', 'the server could not find the requested resource');
    }
    if ((type.namespaced && t.name && !t.namespace) || (!type.namespaced && t.namespace)) {
      return this.fail(req, 404, 'NotFound', 'the server could not find the requested resource');
    }
    const manager = req.query.fieldManager;
    switch (req.method) {
      case 'GET':
        return t.name ? this.read(req, t, type) : this.listObjects(req, t, type);
      case 'POST':
        if (t.name) return this.fail(req, 405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
        return this.createObject(req, t, type, wire(req.body), manager ?? 'unknown');
      case 'PUT':
        return this.write(req, t, type, () => wire(req.body), manager ?? 'unknown');
      case 'PATCH':
        return this.patch(req, t, type, manager);
      case 'DELETE':
        return this.deleteObject(req, t, type);
      default:
        return this.fail(req, 405, 'MethodNotAllowed', `method ${req.method} is not supported`);
    }
  }

  /** API discovery of one group version (GET /apis/<group>/<version>): the kinds served there, or 404. */
  private discover(req: FakeRequest, group: string, version: string): JsonObject {
    const served = [...this.types.values()].filter((t) => t.group === group && t.versions.includes(version));
    if (served.length === 0) return this.fail(req, 404, 'NotFound', 'the server could not find the requested resource');
    const resources: Json[] = [];
    for (const t of served) {
      resources.push({
        name: t.plural,
        kind: t.kind,
        namespaced: t.namespaced,
        verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
      });
      if (t.status)
        resources.push({ name: `${t.plural}/status`, kind: t.kind, namespaced: t.namespaced, verbs: ['get', 'patch', 'update'] });
    }
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources };
  }

  private stored(req: FakeRequest, t: Target, type: ResourceType): Stored {
    const s = t.name ? this.objects.get(this.key(type, t.namespace, t.name)) : undefined;
    if (!s) return this.fail(req, 404, 'NotFound', `${this.qualified(type)} "${t.name}" not found`);
    return s;
  }

  private read(req: FakeRequest, t: Target, type: ResourceType): JsonObject {
    return this.render(this.stored(req, t, type), t.apiVersion);
  }

  private listObjects(req: FakeRequest, t: Target, type: ResourceType): ObjectList<JsonObject> {
    let labels: Selector;
    let fields: Selector;
    try {
      labels = labelSelector(req.query.labelSelector);
      fields = fieldSelector(req.query.fieldSelector);
    } catch (err) {
      return this.fail(req, 400, 'BadRequest', (err as Error).message);
    }
    const items = this.collection(type, t.namespace)
      .map(([, s]) => s)
      .filter((s) => labels.matches(s.obj as never) && fields.matches(s.obj as never))
      .map((s) => this.render(s, t.apiVersion))
      .sort((a, b) => `${meta(a).namespace ?? ''}/${meta(a).name}`.localeCompare(`${meta(b).namespace ?? ''}/${meta(b).name}`));
    return { metadata: { resourceVersion: String(this.revision) }, items: items as never };
  }

  /** The stored objects of a type, in one namespace or all. */
  private collection(type: ResourceType, namespace: string | undefined): [string, Stored][] {
    const prefix = `${type.group}/${type.plural}/${namespace ?? ''}`;
    return [...this.objects].filter(([key]) =>
      namespace === undefined ? key.startsWith(`${type.group}/${type.plural}/`) : key.startsWith(`${prefix}/`),
    );
  }

  /** The namespace lifecycle admission: no new object in a namespace that is missing or being deleted. */
  private admit(req: FakeRequest, type: ResourceType, namespace: string | undefined, name: string): void {
    if (!type.namespaced) return;
    const ns = this.objects.get(this.key(NAMESPACES, undefined, namespace ?? ''));
    if (!ns) return this.fail(req, 404, 'NotFound', `namespaces "${namespace}" not found`);
    if (meta(ns.obj).deletionTimestamp) {
      this.fail(
        req,
        403,
        'Forbidden',
        `${type.plural} "${name}" is forbidden: unable to create new content in namespace ${namespace} because it is being terminated`,
      );
    }
  }

  private checkIdentity(req: FakeRequest, t: Target, type: ResourceType, body: JsonObject): void {
    const m = meta(body);
    if (t.name !== undefined && m.name !== undefined && m.name !== t.name) {
      this.fail(req, 400, 'BadRequest', `the name of the object (${String(m.name)}) does not match the name on the URL (${t.name})`);
    }
    if (type.namespaced && m.namespace !== undefined && m.namespace !== t.namespace) {
      this.fail(req, 400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
    }
    if (body.kind !== undefined && body.kind !== type.kind)
      this.fail(req, 400, 'BadRequest', `kind ${String(body.kind)} does not match ${type.kind}`);
  }

  private createObject(req: FakeRequest, t: Target, type: ResourceType, body: JsonObject, manager: string): JsonObject {
    if (type.namespaced && !t.namespace) return this.fail(req, 405, 'MethodNotAllowed', 'a namespaced object is created in its namespace');
    this.checkIdentity(req, t, type, body);
    const m = meta(body);
    const name =
      typeof m.name === 'string' && m.name
        ? m.name
        : typeof m.generateName === 'string'
          ? `${m.generateName}${(++this.serial).toString(36).padStart(5, '0')}`
          : '';
    if (!name)
      return this.fail(req, 422, 'Invalid', `${type.kind} is invalid: metadata.name: Required value: name or generateName is required`);
    const key = this.key(type, t.namespace, name);
    if (this.objects.has(key)) return this.fail(req, 409, 'AlreadyExists', `${this.qualified(type)} "${name}" already exists`);
    this.admit(req, type, t.namespace, name);
    const obj = this.fresh(type, t, name, body);
    const owners = new FieldOwners();
    owners.update(undefined, obj, { manager, operation: 'Update', subresource: '' }, this.timestamp());
    return this.commit(key, type, undefined, { obj, owners }, t.apiVersion);
  }

  /** A new object: the body with the server's metadata, and no status where status is a subresource. */
  private fresh(type: ResourceType, t: Target, name: string, body: JsonObject): JsonObject {
    const obj = clone(body);
    obj.apiVersion = t.apiVersion;
    obj.kind = type.kind;
    const m = meta(obj);
    delete m.managedFields;
    delete m.resourceVersion;
    delete m.deletionTimestamp;
    m.name = name;
    if (type.namespaced) m.namespace = t.namespace!;
    m.uid = `00000000-0000-4000-8000-${(++this.serial).toString(16).padStart(12, '0')}`;
    m.creationTimestamp = this.timestamp();
    m.generation = 1;
    if (type.status) delete obj.status;
    if (type.kind === 'Namespace') obj.status = { phase: 'Active' };
    if (type.kind === 'CustomResourceDefinition') {
      obj.status = {
        conditions: [
          { type: 'Established', status: 'True', reason: 'InitialNamesAccepted', message: 'the initial names have been accepted' },
        ],
      };
    }
    return obj;
  }

  private patch(req: FakeRequest, t: Target, type: ResourceType, manager: string | undefined): JsonObject {
    const body = req.body;
    switch (req.contentType) {
      case APPLY_PATCH:
        if (!manager)
          return this.fail(
            req,
            422,
            'Invalid',
            'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
          );
        return this.applyObject(req, t, type, wire(body), manager, req.query.force === 'true');
      case MERGE_PATCH:
        if (!isObject(body)) return this.fail(req, 400, 'BadRequest', 'a merge patch must be a JSON object');
        return this.write(req, t, type, (live) => mergePatch(live, body) as JsonObject, manager ?? 'unknown');
      case JSON_PATCH:
        if (!Array.isArray(body)) return this.fail(req, 400, 'BadRequest', 'a JSON patch must be an array of operations');
        return this.write(
          req,
          t,
          type,
          (live) => {
            try {
              return jsonPatch(live, body as JsonPatchOp[]);
            } catch (err) {
              return this.fail(req, 422, 'Invalid', (err as Error).message);
            }
          },
          manager ?? 'unknown',
        );
      default:
        return this.fail(
          req,
          415,
          'UnsupportedMediaType',
          `the body of the request was in an unknown format: ${req.contentType ?? 'none'}`,
        );
    }
  }

  private applyObject(req: FakeRequest, t: Target, type: ResourceType, body: JsonObject, manager: string, force: boolean): JsonObject {
    this.checkIdentity(req, t, type, body);
    const sub = t.subresource ?? '';
    const key = this.key(type, t.namespace, t.name!);
    const live = this.objects.get(key);
    if (!live && sub) return this.fail(req, 404, 'NotFound', `${this.qualified(type)} "${t.name}" not found`);
    if (!live) this.admit(req, type, t.namespace, t.name!);
    if (live) this.checkResourceVersion(req, live.obj, body);
    // What this apply may set: status alone through /status, everything else (but status) otherwise.
    const config: JsonObject = sub ? { status: body.status ?? {} } : withoutServerFields(body, type);
    const next: Stored = live
      ? { obj: clone(live.obj), owners: live.owners.copy() }
      : { obj: this.fresh(type, t, t.name!, {}), owners: new FieldOwners() };
    const mk: ManagerKey = { manager, operation: 'Apply', subresource: sub };
    try {
      next.owners.apply(next.obj, config, mk, force, this.timestamp());
    } catch (err) {
      if (err instanceof ApplyConflictError) return this.fail(req, 409, 'Conflict', err.message);
      throw err;
    }
    if (live) this.checkFinalizers(req, live.obj, next.obj, type);
    return this.commit(key, type, live, next, t.apiVersion);
  }

  /** PUT and patches: `change` turns the live object into the new one; the writer owns what it changed. */
  private write(req: FakeRequest, t: Target, type: ResourceType, change: (live: JsonObject) => JsonObject, manager: string): JsonObject {
    if (!t.name) return this.fail(req, 405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
    const key = this.key(type, t.namespace, t.name);
    const live = this.stored(req, t, type);
    const wanted = wire(change(clone(live.obj)));
    this.checkIdentity(req, t, type, wanted);
    this.checkResourceVersion(req, live.obj, wanted);
    const sub = t.subresource ?? '';
    // /status changes status alone; the main resource keeps the live status (where that is a subresource)
    // and the server's metadata.
    let obj: JsonObject;
    if (sub) {
      obj = clone(live.obj);
      obj.status = wanted.status ?? {};
    } else {
      obj = withoutServerFields(wanted, type);
      const server = serverFields(live.obj, type);
      obj.metadata = { ...meta(obj), ...(server.metadata as JsonObject) };
      if (server.status !== undefined) obj.status = server.status;
    }
    obj.apiVersion = live.obj.apiVersion!;
    obj.kind = type.kind;
    const next: Stored = { obj, owners: live.owners.copy() };
    next.owners.update(live.obj, obj, { manager, operation: 'Update', subresource: sub }, this.timestamp());
    this.checkFinalizers(req, live.obj, obj, type);
    return this.commit(key, type, live, next, t.apiVersion);
  }

  private checkResourceVersion(req: FakeRequest, live: JsonObject, body: JsonObject): void {
    const want = meta(body).resourceVersion;
    if (want !== undefined && want !== '' && want !== meta(live).resourceVersion) {
      this.fail(
        req,
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${String(live.kind)} "${String(meta(live).name)}": the object has been modified; please apply your changes to the latest version and try again`,
      );
    }
  }

  /** An object being deleted may lose finalizers but gain none, as the API server validates. */
  private checkFinalizers(req: FakeRequest, live: JsonObject, next: JsonObject, type: ResourceType): void {
    if (!meta(live).deletionTimestamp) return;
    const added = finalizersOf(next).filter((f) => !finalizersOf(live).includes(f));
    if (added.length) {
      this.fail(
        req,
        422,
        'Invalid',
        `${type.kind} "${String(meta(live).name)}" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(added)}`,
      );
    }
  }

  private deleteObject(req: FakeRequest, t: Target, type: ResourceType): JsonObject {
    const key = this.key(type, t.namespace, t.name ?? '');
    const live = this.stored(req, t, type);
    const uid = isObject(req.body) && isObject(req.body.preconditions) ? req.body.preconditions.uid : undefined;
    if (uid !== undefined && uid !== meta(live.obj).uid) {
      this.fail(
        req,
        409,
        'Conflict',
        `Precondition failed: UID in precondition: ${String(uid)}, UID in object meta: ${String(meta(live.obj).uid)}`,
      );
    }
    if (meta(live.obj).deletionTimestamp) return this.render(live, t.apiVersion);
    const next: Stored = { obj: clone(live.obj), owners: live.owners.copy() };
    if (finalizersOf(live.obj).length > 0 || type.kind === 'Namespace') {
      meta(next.obj).deletionTimestamp = this.timestamp();
      meta(next.obj).deletionGracePeriodSeconds = 0;
      meta(next.obj).generation = Number(meta(next.obj).generation ?? 0) + 1;
      if (type.kind === 'Namespace') next.obj.status = { ...(isObject(next.obj.status) ? next.obj.status : {}), phase: 'Terminating' };
      return this.commit(key, type, live, next, t.apiVersion);
    }
    return this.remove(key, type, live, t.apiVersion);
  }

  /** Stores a write: a new resourceVersion when anything changed, generation on a spec change, events to watchers. */
  private commit(key: string, type: ResourceType, live: Stored | undefined, next: Stored, apiVersion: string): JsonObject {
    const m = meta(next.obj);
    // ObjectMeta's lists and maps are omitempty: an emptied one is not stored.
    for (const f of ['finalizers', 'labels', 'annotations', 'ownerReferences']) {
      const v = m[f];
      if ((Array.isArray(v) && v.length === 0) || (isObject(v) && Object.keys(v).length === 0)) delete m[f];
    }
    if (live && m.deletionTimestamp && finalizersOf(next.obj).length === 0 && type.kind !== 'Namespace')
      return this.remove(key, type, next, apiVersion);
    if (live) {
      const unchanged =
        JSON.stringify(withoutVersion(live.obj)) === JSON.stringify(withoutVersion(next.obj)) &&
        live.owners.fingerprint() === next.owners.fingerprint();
      if (unchanged) return this.render(live, apiVersion);
      if (specPart(live.obj) !== specPart(next.obj)) m.generation = Number(meta(live.obj).generation ?? 0) + 1;
    }
    m.resourceVersion = String(++this.revision);
    this.objects.set(key, next);
    // Established at once: whoever sees the CRD's event finds its kinds served.
    if (type.kind === 'CustomResourceDefinition') this.serveCrd(next.obj);
    this.notify(type, live?.obj, next, true);
    return this.render(next, apiVersion);
  }

  private remove(key: string, type: ResourceType, last: Stored, apiVersion: string): JsonObject {
    this.objects.delete(key);
    const gone: Stored = { obj: clone(last.obj), owners: last.owners };
    meta(gone.obj).resourceVersion = String(++this.revision);
    this.notify(type, last.obj, gone, false);
    if (type.kind === 'CustomResourceDefinition') this.unserveCrd(gone.obj);
    return this.render(gone, apiVersion);
  }

  /** Watch events: a change that makes an object match a watch is ADDED there, one that makes it stop matching DELETED. */
  private notify(type: ResourceType, before: JsonObject | undefined, current: Stored, exists: boolean): void {
    for (const w of [...this.watchers]) {
      if (w.group !== type.group || w.plural !== type.plural) continue;
      const sees = (o: JsonObject | undefined) =>
        o !== undefined &&
        (w.namespace === undefined || meta(o).namespace === w.namespace) &&
        w.labels.matches(o as never) &&
        w.fields.matches(o as never);
      const was = sees(before);
      const is = exists && sees(current.obj);
      if (is) w.handler(was ? 'MODIFIED' : 'ADDED', this.render(current, w.apiVersion));
      else if (was) w.handler('DELETED', this.render(current, w.apiVersion));
    }
  }

  private crdTypes(crd: JsonObject): ResourceType[] {
    const spec = isObject(crd.spec) ? crd.spec : {};
    const names = isObject(spec.names) ? spec.names : {};
    const versions = Array.isArray(spec.versions) ? spec.versions.filter(isObject) : [];
    const served = versions.filter((v) => v.served !== false);
    if (typeof spec.group !== 'string' || typeof names.plural !== 'string' || typeof names.kind !== 'string' || served.length === 0)
      return [];
    return [
      {
        group: spec.group,
        versions: served.map((v) => String(v.name)),
        plural: names.plural,
        kind: names.kind,
        namespaced: spec.scope !== 'Cluster',
        status: served.some((v) => isObject(v.subresources) && isObject(v.subresources.status)),
        crd: String(meta(crd).name),
      },
    ];
  }

  private serveCrd(crd: JsonObject): void {
    for (const t of this.crdTypes(crd)) this.types.set(`${t.group}/${t.plural}`, t);
    for (const l of [...this.typeListeners]) l();
  }

  private unserveCrd(crd: JsonObject): void {
    for (const t of this.crdTypes(crd)) {
      for (const [key, s] of this.collection(t, undefined)) this.remove(key, t, s, String(s.obj.apiVersion));
      this.types.delete(`${t.group}/${t.plural}`);
    }
    for (const l of [...this.typeListeners]) l();
  }
}

/** The fields a writer may set on the main resource: its body without the server's metadata (and status, where that is a subresource). */
function withoutServerFields(body: JsonObject, type: ResourceType): JsonObject {
  const out = clone(body);
  const m = meta(out);
  for (const f of SERVER_METADATA_FIELDS) delete m[f];
  if (type.status) delete out.status;
  return out;
}

/** The server's metadata (and status, where that is a subresource) of the live object, which a main-resource write keeps. */
function serverFields(live: JsonObject, type: ResourceType): JsonObject {
  const m = meta(live);
  const keep: JsonObject = {};
  for (const f of [
    'name',
    'namespace',
    'uid',
    'resourceVersion',
    'generation',
    'creationTimestamp',
    'deletionTimestamp',
    'deletionGracePeriodSeconds',
  ]) {
    if (m[f] !== undefined) keep[f] = clone(m[f]!);
  }
  return { metadata: keep, ...(type.status && live.status !== undefined ? { status: clone(live.status) } : {}) };
}

function withoutVersion(obj: JsonObject): JsonObject {
  const out = clone(obj);
  delete meta(out).resourceVersion;
  delete meta(out).managedFields;
  return out;
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const out: JsonObject = isObject(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k] ?? null, v);
  }
  return out;
}

interface JsonPatchOp {
  op: string;
  path: string;
  value?: Json;
  from?: string;
}

/** RFC 6902 JSON patch (add, remove, replace, test); a failed test or a missing path throws. */
function jsonPatch(doc: JsonObject, ops: JsonPatchOp[]): JsonObject {
  const out = clone(doc);
  for (const op of ops) {
    const segs = op.path
      .split('/')
      .slice(1)
      .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = segs.pop();
    if (last === undefined) throw new Error(`JSON patch path "${op.path}" is not supported`);
    let parent: Json | undefined = out;
    for (const s of segs) parent = Array.isArray(parent) ? parent[Number(s)] : isObject(parent) ? parent[s] : undefined;
    if (!isObject(parent) && !Array.isArray(parent)) throw new Error(`JSON patch: the path "${op.path}" does not exist`);
    const index = Array.isArray(parent) ? (last === '-' ? parent.length : Number(last)) : -1;
    const current = Array.isArray(parent) ? parent[index] : parent[last];
    switch (op.op) {
      case 'test':
        if (JSON.stringify(current) !== JSON.stringify(op.value)) throw new Error(`testing value ${op.path} failed: test failed`);
        break;
      case 'remove':
        if (current === undefined) throw new Error(`JSON patch: unable to remove nonexistent key: ${op.path}`);
        if (Array.isArray(parent)) parent.splice(index, 1);
        else delete parent[last];
        break;
      case 'add':
        if (Array.isArray(parent)) parent.splice(index, 0, clone(op.value ?? null));
        else parent[last] = clone(op.value ?? null);
        break;
      case 'replace':
        if (current === undefined) throw new Error(`JSON patch: replace operation does not apply: doc is missing key: ${op.path}`);
        if (Array.isArray(parent)) parent[index] = clone(op.value ?? null);
        else parent[last] = clone(op.value ?? null);
        break;
      default:
        throw new Error(`JSON patch operation "${op.op}" is not supported`);
    }
  }
  return out;
}
