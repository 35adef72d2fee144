// Helpers shared by the integration tests: install CRDs from crds/ (and optional third-party CRDs),
// create namespaces and model-server pods with a kubelet's status, act as a ServiceAccount, and read
// objects, all through the real API server.

import fs from 'node:fs';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import YAML from 'yaml';
import type { KubeClient } from '../../src/common/kube/kube-client.ts';
import { repoRoot } from '../../test/support/repo-root.ts';
import { until } from '../../test/support/until.ts';
import type { KubeEnv } from './cluster.ts';

export async function installCrd(client: KubeClient, crd: { metadata: { name: string } }): Promise<void> {
  await client.create({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', ...crd });
  await until(
    async () => {
      const live = await client.get<{ status?: { conditions?: { type: string; status: string }[] } }>(
        `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`,
      );
      return live.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
    },
    { message: `CRD ${crd.metadata.name} established`, timeoutMs: 30_000 },
  );
}

export async function installKvrouteCrds(client: KubeClient): Promise<void> {
  const dir = path.join(repoRoot, 'crds');
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.yaml'))) {
    const doc = YAML.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
    if (doc.kind === 'CustomResourceDefinition') await installCrd(client, doc);
  }
}

/** A schemaless stand-in for a third-party CRD (Istio, Gateway API Inference Extension) in the test cluster. */
export function openCrd(
  group: string,
  version: string,
  kind: string,
  plural: string,
): { metadata: { name: string; annotations?: Record<string, string> } } & Record<string, unknown> {
  // Groups under k8s.io must carry the API-review annotation, as the real Gateway API CRDs do.
  const annotations = /(^|\.)k8s\.io$/.test(group)
    ? { 'api-approved.kubernetes.io': 'https://github.com/kubernetes-sigs/gateway-api-inference-extension' }
    : undefined;
  return {
    metadata: { name: `${plural}.${group}`, ...(annotations ? { annotations } : {}) },
    spec: {
      group,
      names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List` },
      scope: 'Namespaced',
      versions: [
        {
          name: version,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
        },
      ],
    },
  };
}

export async function createNamespace(client: KubeClient, name: string): Promise<void> {
  await client.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
}

/**
 * A kubeconfig that authenticates as a ServiceAccount (a TokenRequest for it, in place of the admin
 * token), written to `fileName` in the environment's directory: what a test uses to act with exactly
 * the RBAC a component is granted.
 */
export async function serviceAccountKubeconfig(
  env: Pick<KubeEnv, 'client' | 'dir' | 'kubeconfigPath'>,
  namespace: string,
  serviceAccount: string,
  fileName: string,
): Promise<{ path: string; kubeConfig: KubeConfig }> {
  const { status } = await env.client.request<{ status: { token: string } }>(
    'POST',
    `/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}/token`,
    { body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } } },
  );
  const config = YAML.parse(fs.readFileSync(env.kubeconfigPath, 'utf8')) as { users: unknown[] };
  config.users = [{ name: 'admin', user: { token: status.token } }];
  const file = path.join(env.dir, fileName);
  fs.writeFileSync(file, YAML.stringify(config));
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(file);
  return { path: file, kubeConfig };
}

/** A vLLM pod with these labels (nothing runs it: the status comes from setPodStatus). */
export async function createModelServerPod(
  client: KubeClient,
  namespace: string,
  name: string,
  labels: Record<string, string>,
): Promise<void> {
  await client.create({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels },
    spec: { containers: [{ name: 'vllm', image: 'vllm/vllm-openai:v0.33.0' }] },
  });
}

/** What a kubelet would report: Running, the pod IP and the Ready condition, through the status subresource. */
export async function setPodStatus(client: KubeClient, namespace: string, name: string, ip: string, ready: boolean): Promise<void> {
  const status = {
    phase: 'Running',
    podIP: ip,
    podIPs: [{ ip }],
    conditions: [{ type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: new Date().toISOString() }],
  };
  await client.request('PATCH', `/api/v1/namespaces/${namespace}/pods/${name}/status`, {
    body: { status },
    contentType: 'application/merge-patch+json',
  });
}
