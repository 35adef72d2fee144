// Helpers shared by the operator's integration tests: install CRDs from crds/ (and optional third-party
// CRDs), create namespaces, and read objects, all through the real API server.

import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { KubeClient } from '../../src/common/kube/kube-client.ts';
import { repoRoot } from '../../test/support/repo-root.ts';
import { until } from '../../test/support/until.ts';

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
