// A small Kubernetes REST client over client-node's KubeConfig (auth, TLS): typed errors, server-side
// apply on any path including the /status subresource, and a kind -> resource table for our objects.
// client-node's generated APIs cannot server-side-apply a subresource, which status needs.

import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

export class KubeApiError extends Error {
  readonly status: number;
  readonly reason: string;
  constructor(status: number, reason: string, message: string) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

export const isNotFound = (err: unknown): boolean => err instanceof KubeApiError && err.status === 404;
export const isConflict = (err: unknown): boolean => err instanceof KubeApiError && err.status === 409;

const RESOURCES: Record<string, string> = {
  ConfigMap: 'configmaps',
  Service: 'services',
  ServiceAccount: 'serviceaccounts',
  Pod: 'pods',
  Namespace: 'namespaces',
  Event: 'events',
  Deployment: 'deployments',
  Role: 'roles',
  RoleBinding: 'rolebindings',
  Lease: 'leases',
  EnvoyFilter: 'envoyfilters',
  DestinationRule: 'destinationrules',
  NetworkPolicy: 'networkpolicies',
  InferencePool: 'inferencepools',
  InferenceModel: 'inferencemodels',
  CustomResourceDefinition: 'customresourcedefinitions',
};

const CLUSTER_SCOPED = new Set(['Namespace', 'CustomResourceDefinition']);

/** The REST path of a kind's collection (no name) or of one object. */
export function resourcePath(apiVersion: string, kind: string, namespace?: string, name?: string): string {
  const resource = RESOURCES[kind];
  if (!resource) throw new Error(`no REST resource known for kind "${kind}"; add it to RESOURCES`);
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  const ns = !CLUSTER_SCOPED.has(kind) && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `${base}${ns}/${resource}${name ? `/${encodeURIComponent(name)}` : ''}`;
}

export interface RequestOptions {
  query?: Record<string, string | undefined>;
  body?: unknown;
  contentType?: string;
}

export interface ApplyOptions {
  fieldManager: string;
  force?: boolean;
  subresource?: 'status';
}

export interface KubeObjectLike {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; [field: string]: unknown };
  [field: string]: unknown;
}

/** A collection as the API server lists it. */
export interface ObjectList<T> {
  metadata: { resourceVersion?: string };
  items: T[];
}

/**
 * The API-server calls the operator makes. KubeClient implements it over HTTP; the controllers' unit
 * tests pass an in-memory fake (src/controllers/testing/fake-kube.ts) that keeps the same contract.
 */
export interface KubeApi {
  request<T>(method: string, path: string, options?: RequestOptions): Promise<T>;
  get<T>(path: string): Promise<T>;
  list<T>(path: string, selectors?: { labelSelector?: string; fieldSelector?: string }): Promise<ObjectList<T>>;
  apply<T>(obj: KubeObjectLike, options: ApplyOptions): Promise<T>;
  create<T>(obj: KubeObjectLike): Promise<T>;
  /** PUT: fails with 409 when metadata.resourceVersion is set and no longer current. */
  replace<T>(obj: KubeObjectLike): Promise<T>;
  /** Resolves false when the object is already gone; a stale `preconditionUid` fails with 409. */
  delete(path: string, preconditionUid?: string, propagationPolicy?: 'Background' | 'Foreground' | 'Orphan'): Promise<boolean>;
}

export class KubeClient implements KubeApi {
  private readonly kc: KubeConfig;
  private readonly server: URL;
  private readonly agent: http.Agent;

  constructor(kc: KubeConfig) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.kc = kc;
    this.server = new URL(cluster.server);
    this.agent =
      this.server.protocol === 'https:'
        ? new https.Agent({ keepAlive: true, maxSockets: 32 })
        : new http.Agent({ keepAlive: true, maxSockets: 32 });
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const url = new URL(path, this.server);
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const opts: https.RequestOptions = { method, headers: { accept: 'application/json' } };
    await this.kc.applyToHTTPSOptions(opts);
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const headers: Record<string, string | number> = { ...(opts.headers as Record<string, string>) };
    if (body !== undefined) {
      headers['content-type'] = options.contentType ?? 'application/json';
      headers['content-length'] = Buffer.byteLength(body);
    }
    const transport = url.protocol === 'https:' ? https : http;
    return new Promise<T>((resolve, reject) => {
      const req = transport.request(url, { ...opts, method, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = undefined;
          }
          if (status >= 200 && status < 300) return resolve(parsed as T);
          const s = (parsed ?? {}) as { reason?: string; message?: string };
          reject(
            new KubeApiError(status, s.reason ?? 'Unknown', `${method} ${url.pathname}: ${status} ${s.message ?? text.slice(0, 500)}`),
          );
        });
      });
      req.on('error', reject);
      req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${url.pathname}: timed out after 30 s`)));
      if (body !== undefined) req.write(body);
      req.end();
    });
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  list<T>(path: string, selectors: { labelSelector?: string; fieldSelector?: string } = {}): Promise<ObjectList<T>> {
    return this.request('GET', path, { query: selectors });
  }

  /** Server-side apply of `obj` (or its status) under one field manager. */
  apply<T>(obj: KubeObjectLike, options: ApplyOptions): Promise<T> {
    const { apiVersion, kind, metadata } = obj;
    if (!apiVersion || !kind || !metadata?.name) throw new Error('apply needs apiVersion, kind and metadata.name');
    const path = resourcePath(apiVersion, kind, metadata.namespace, metadata.name) + (options.subresource ? `/${options.subresource}` : '');
    return this.request<T>('PATCH', path, {
      query: { fieldManager: options.fieldManager, force: options.force ? 'true' : undefined },
      body: obj,
      contentType: 'application/apply-patch+yaml',
    });
  }

  create<T>(obj: KubeObjectLike): Promise<T> {
    return this.request<T>('POST', resourcePath(obj.apiVersion!, obj.kind!, obj.metadata?.namespace), { body: obj });
  }

  replace<T>(obj: KubeObjectLike): Promise<T> {
    return this.request<T>('PUT', resourcePath(obj.apiVersion!, obj.kind!, obj.metadata?.namespace, obj.metadata?.name), { body: obj });
  }

  async delete(
    path: string,
    preconditionUid?: string,
    propagationPolicy: 'Background' | 'Foreground' | 'Orphan' = 'Background',
  ): Promise<boolean> {
    try {
      await this.request('DELETE', path, {
        body: {
          kind: 'DeleteOptions',
          apiVersion: 'v1',
          propagationPolicy,
          ...(preconditionUid ? { preconditions: { uid: preconditionUid } } : {}),
        },
      });
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  close(): void {
    this.agent.destroy();
  }
}
