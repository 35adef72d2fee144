// Least privilege, by the list: every verb the operator is granted, on every resource, in each way it
// ships (config/rbac, the Helm chart in both scopes, the OLM bundle), must be exactly the list below,
// and the Role the operator grants each pool's router too. A rule widened anywhere (a verb, a resource,
// a wildcard, Secrets) fails here until this list, and docs/security.md, say why it is needed.

import { describe, it, expect } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { buildRouterRbac } from '../src/controllers/pool/router.ts';
import { testPool } from '../src/controllers/testing.ts';
import { repoRoot } from '../test/support/repo-root.ts';
import { helmBinary, ok, parseObjects } from './support/helm.ts';

interface Rule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

const ALL = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'];
const READ = ['get', 'list', 'watch'];

/** group/resource -> verbs: everything the operator's ServiceAccount may do. */
const OPERATOR_GRANTS: Record<string, string[]> = {
  'inference.kvroute.io/inferencepools': [...READ, 'patch'],
  'inference.kvroute.io/inferencemodels': READ,
  'inference.kvroute.io/inferencepools/status': ['get', 'patch', 'update'],
  'inference.kvroute.io/inferencemodels/status': ['get', 'patch', 'update'],
  'inference.kvroute.io/inferencepools/finalizers': ['update'],
  'apps/deployments': ALL,
  'core/services': ALL,
  'core/configmaps': ALL,
  'core/serviceaccounts': ALL,
  'core/pods': READ,
  'core/namespaces': READ,
  'core/events': ['create', 'patch'],
  'networking.k8s.io/networkpolicies': [...READ, 'create', 'patch', 'delete'],
  'rbac.authorization.k8s.io/roles': ALL,
  'rbac.authorization.k8s.io/rolebindings': ALL,
  'networking.istio.io/envoyfilters': [...READ, 'create', 'patch', 'delete'],
  'networking.istio.io/destinationrules': ['get', 'create', 'patch', 'delete'],
  'inference.networking.k8s.io/inferencepools': [...READ, 'create', 'patch', 'delete'],
  'apiextensions.k8s.io/customresourcedefinitions': READ,
  'coordination.k8s.io/leases': ALL,
};

/** The union of `rules` as group/resource -> sorted verbs; a rule with resourceNames or non-resource URLs is kept apart. */
function grants(rules: Rule[]): Record<string, string[]> {
  const out: Record<string, Set<string>> = {};
  for (const r of rules) {
    expect(r.resourceNames ?? []).toEqual([]);
    expect(r.nonResourceURLs ?? []).toEqual([]);
    for (const g of r.apiGroups ?? [])
      for (const res of r.resources ?? []) for (const v of r.verbs) (out[`${g === '' ? 'core' : g}/${res}`] ??= new Set()).add(v);
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, [...v].sort()]));
}

const sorted = (g: Record<string, string[]>) => Object.fromEntries(Object.entries(g).map(([k, v]) => [k, [...v].sort()]));

function expectExactly(actual: Record<string, string[]>, expected: Record<string, string[]>): void {
  // Compared key by key, so a failure names the resource that moved.
  expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
  for (const key of Object.keys(expected)) expect([key, actual[key]]).toEqual([key, [...expected[key]!].sort()]);
}

/** Every rule of the Roles and ClusterRoles bound to the operator's ServiceAccount among `objects`. */
function operatorRules(
  objects: Array<{ kind: string; metadata: { name: string }; [k: string]: unknown }>,
  sa = 'kvroute-operator',
): Rule[] {
  const bound = new Set<string>();
  for (const o of objects) {
    if (o.kind !== 'RoleBinding' && o.kind !== 'ClusterRoleBinding') continue;
    const subjects = (o.subjects as Array<{ kind: string; name: string }>) ?? [];
    if (subjects.some((s) => s.kind === 'ServiceAccount' && s.name === sa)) {
      const ref = o.roleRef as { kind: string; name: string };
      bound.add(`${ref.kind}/${ref.name}`);
    }
  }
  return objects.filter((o) => bound.has(`${o.kind}/${o.metadata.name}`)).flatMap((o) => (o.rules as Rule[]) ?? []);
}

function readYamlDocs(file: string): Array<{ kind: string; metadata: { name: string } }> {
  return YAML.parseAllDocuments(fs.readFileSync(path.join(repoRoot, file), 'utf8')).map((d) => d.toJSON());
}

describe('operator RBAC is exactly the listed verbs', () => {
  it('in config/rbac (kubectl apply -k config/default)', () => {
    const objects = ['role.yaml', 'role_binding.yaml', 'leader_election_role.yaml'].flatMap((f) => readYamlDocs(`config/rbac/${f}`));
    expectExactly(grants(operatorRules(objects)), OPERATOR_GRANTS);
  });

  it('in the OLM bundle (clusterPermissions and permissions of the CSV)', () => {
    const csv = readYamlDocs('bundle/manifests/kvroute.clusterserviceversion.yaml')[0] as unknown as {
      spec: { install: { spec: { clusterPermissions: Array<{ rules: Rule[] }>; permissions: Array<{ rules: Rule[] }> } } };
    };
    const install = csv.spec.install.spec;
    const rules = [...install.clusterPermissions, ...install.permissions].flatMap((p) => p.rules);
    expectExactly(grants(rules), OPERATOR_GRANTS);
  });

  const helm = helmBinary();
  const describeHelm = helm ? describe : describe.skip;
  describeHelm('in the Helm chart', () => {
    const render = (...set: string[]) =>
      parseObjects(
        ok(helm!, ['template', 'kvroute', 'charts/kvroute', '--namespace', 'kvroute-system', ...set.flatMap((s) => ['--set', s])]).stdout,
      );

    it('cluster-wide (the default)', () => {
      expectExactly(grants(operatorRules(render() as never)), OPERATOR_GRANTS);
    });

    it('watching one namespace, with a gateway namespace', () => {
      const objects = render('operator.watchNamespace=ml', 'gatewayNamespaces={istio-system}');
      expectExactly(grants(operatorRules(objects as never)), OPERATOR_GRANTS);
    });

    it('without leader election, which then needs no Lease', () => {
      const { ['coordination.k8s.io/leases']: _leases, ...rest } = OPERATOR_GRANTS;
      expectExactly(grants(operatorRules(render('operator.leaderElection.enabled=false', 'replicaCount=1') as never)), rest);
    });
  });

  it('grants no wildcard and no Secrets anywhere it ships', () => {
    const texts = [
      'config/rbac/role.yaml',
      'config/rbac/leader_election_role.yaml',
      'bundle/manifests/kvroute.clusterserviceversion.yaml',
    ].map((f) => fs.readFileSync(path.join(repoRoot, f), 'utf8'));
    for (const text of texts) {
      expect(text).not.toMatch(/['"]?\*['"]?\s*(,|\]|$)/m);
      expect(text).not.toMatch(/\bsecrets\b/);
    }
  });

  it("grants each pool's router read access to pods and to the pool it follows, nothing more", () => {
    const [, role] = buildRouterRbac(testPool({ model: { name: 'm' }, selector: { matchLabels: { app: 'vllm' } } }));
    expectExactly(grants(role.rules as Rule[]), { 'core/pods': READ, 'inference.kvroute.io/inferencepools': READ });
    const [, gieRole] = buildRouterRbac(testPool({ poolRef: { name: 'gie' } }));
    expectExactly(sorted(grants(gieRole.rules as Rule[])), { 'core/pods': READ, 'inference.networking.k8s.io/inferencepools': READ });
  });
});
