// The ways kvroute is installed, checked with the real tools: the Helm chart (`helm lint --strict`,
// `helm template` with good values and with values its schema or templates reject, RBAC, dashboard),
// chart CRDs equal to crds/, and then against a real kube-apiserver: the chart and the kustomize bases
// applied with server-side dry-run after their CRDs, in namespaces whose PodSecurity admission enforces
// `restricted` (proved live by a pod it rejects), the operator-rendered router and vLLM pods the same
// way, the chart's RBAC enough for the operator and no more, and docs/install.md's kubectl and Helm
// sections run as written.

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { V1PodSpec } from '@kubernetes/client-node';
import YAML from 'yaml';
import { stopChild } from '../src/common/child-process.ts';
import { resourcePath, type KubeClient } from '../src/common/kube/kube-client.ts';
import { createLogger } from '../src/common/log.ts';
import { createRegistry } from '../src/common/metrics.ts';
import { Operator } from '../src/controllers/manager.ts';
import { nodeBinary } from '../test/support/node.ts';
import { repoRoot as ROOT } from '../test/support/repo-root.ts';
import { until } from '../test/support/until.ts';
import { KUBE_BIN_DIR, kubeTestsEnabled, startKube, type KubeEnv } from './kube/cluster.ts';
import { installCrd, openCrd, serviceAccountKubeconfig } from './kube/fixtures.ts';
import { helmBinary, kubectlForPackaging, ok, parseObjects, run, toYamlStream, type KubeObject } from './support/helm.ts';

const CHART = 'charts/kvroute';
const helm = helmBinary();
const kubectl = kubectlForPackaging();
const describeHelm = helm ? describe : describe.skip;
const describeKube = helm && kubectl && kubeTestsEnabled() ? describe : describe.skip;
if (!helm) process.stderr.write('packaging: helm not found (bash hack/helm/install.sh); skipping the chart tests\n');

type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };
type Condition = { type: string; status: string; reason: string; message: string };

/** `helm template` of the chart with `--set` values; throws with helm's message when it fails. */
function template(sets: string[] = [], options: { namespace?: string; release?: string; extra?: string[] } = {}): KubeObject[] {
  const args = [
    'template',
    options.release ?? 'kvroute',
    CHART,
    '--namespace',
    options.namespace ?? 'kvroute-system',
    ...sets.flatMap((s) => ['--set', s]),
    ...(options.extra ?? []),
  ];
  return parseObjects(ok(helm!, args).stdout);
}

/** helm's error for values that must be rejected. */
function templateError(sets: string[], setString: string[] = []): string {
  const r = run(helm!, [
    'template',
    'kvroute',
    CHART,
    ...sets.flatMap((s) => ['--set', s]),
    ...setString.flatMap((s) => ['--set-string', s]),
  ]);
  if (r.status === 0) throw new Error(`helm template accepted ${[...sets, ...setString].join(' ')}`);
  return r.stderr;
}

const find = (objs: KubeObject[], kind: string, name?: string, namespace?: string) =>
  objs.filter(
    (o) =>
      o.kind === kind &&
      (name === undefined || o.metadata.name === name) &&
      (namespace === undefined || o.metadata.namespace === namespace),
  );
const one = (objs: KubeObject[], kind: string, name?: string, namespace?: string) => {
  const found = find(objs, kind, name, namespace);
  if (found.length !== 1)
    throw new Error(
      `expected one ${kind} ${name ?? ''} ${namespace ?? ''}, found ${found.length}: ${objs.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`).join(', ')}`,
    );
  return found[0]!;
};
const rulesOf = (o: KubeObject) => o.rules as Rule[];
const podSpecOf = (o: KubeObject) => (o.spec as { template: { spec: V1PodSpec } }).template.spec;
const argsOf = (objs: KubeObject[]) => podSpecOf(one(objs, 'Deployment')).containers[0]!.args!;

/** The values that turn every optional part of the chart on. */
const ALL_OPTIONS = [
  'operator.watchNamespace=pools',
  'gatewayNamespaces={istio-system,gateways}',
  'metrics.serviceMonitor.enabled=true',
  'metrics.poolPodMonitor.enabled=true',
  'grafana.dashboard.enabled=true',
  'grafana.dashboard.namespace=monitoring',
];

/**
 * OpenShift's restricted-v2 SCC, as far as a pod spec shows it (the API server here has no SCC
 * admission): no host namespaces or ports, allowed volume types only, no privilege or escalation, all
 * capabilities dropped (NET_BIND_SERVICE the only addition), RuntimeDefault seccomp, and no fixed
 * UID, GID, fsGroup or SELinux level, which the SCC assigns from the namespace's range.
 */
function restrictedV2Violations(spec: V1PodSpec): string[] {
  const out: string[] = [];
  const allowedVolumes = [
    'configMap',
    'csi',
    'downwardAPI',
    'emptyDir',
    'ephemeral',
    'persistentVolumeClaim',
    'projected',
    'secret',
    'image',
  ];
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) out.push('host namespaces');
  for (const v of spec.volumes ?? []) {
    const type = Object.keys(v).find((k) => k !== 'name')!;
    if (!allowedVolumes.includes(type)) out.push(`volume ${v.name}: ${type}`);
  }
  const psc = spec.securityContext ?? {};
  for (const f of ['runAsUser', 'runAsGroup', 'fsGroup', 'seLinuxOptions', 'supplementalGroups'] as const)
    if (psc[f] !== undefined) out.push(`pod ${f} is fixed`);
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    const sc = c.securityContext ?? {};
    if (sc.privileged) out.push(`${c.name}: privileged`);
    if (sc.allowPrivilegeEscalation !== false) out.push(`${c.name}: allowPrivilegeEscalation not false`);
    if (!sc.capabilities?.drop?.includes('ALL')) out.push(`${c.name}: capabilities not dropped`);
    for (const cap of sc.capabilities?.add ?? []) if (cap !== 'NET_BIND_SERVICE') out.push(`${c.name}: adds ${cap}`);
    for (const f of ['runAsUser', 'runAsGroup', 'seLinuxOptions'] as const) if (sc[f] !== undefined) out.push(`${c.name}: ${f} is fixed`);
    const seccomp = sc.seccompProfile?.type ?? psc.seccompProfile?.type;
    if (seccomp !== 'RuntimeDefault') out.push(`${c.name}: seccomp ${seccomp}`);
    if ((sc.runAsNonRoot ?? psc.runAsNonRoot) !== true) out.push(`${c.name}: runAsNonRoot not true`);
    if (sc.readOnlyRootFilesystem !== true) out.push(`${c.name}: root filesystem writable`);
    if ((c.ports ?? []).some((p) => p.hostPort)) out.push(`${c.name}: hostPort`);
  }
  return out;
}

const WORKLOADS = ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'];

/** A Pod per workload, from its template: PodSecurity admission enforces on pods, and only warns on workloads. */
function podsOf(objs: KubeObject[], namespace: string): KubeObject[] {
  return objs
    .filter((o) => WORKLOADS.includes(o.kind))
    .map((o) => {
      const template = (o.spec as { template: { metadata?: { labels?: Record<string, string> }; spec: V1PodSpec } }).template;
      return {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: `${o.metadata.name}-pod`, namespace, labels: template.metadata?.labels ?? {} },
        spec: template.spec,
      };
    });
}

describeHelm('Helm chart', () => {
  it('passes helm lint --strict with default values and with every option on', () => {
    expect(ok(helm!, ['lint', '--strict', CHART]).stdout).toContain('0 chart(s) failed');
    expect(ok(helm!, ['lint', '--strict', CHART, ...ALL_OPTIONS.flatMap((s) => ['--set', s])]).stdout).toContain('0 chart(s) failed');
  });

  it('renders the operator by default: Deployment, ServiceAccount, RBAC, metrics Service, PodDisruptionBudget, and nothing optional', () => {
    const objs = template();
    expect(objs.map((o) => o.kind).sort()).toEqual(
      ['ClusterRole', 'ClusterRoleBinding', 'Deployment', 'PodDisruptionBudget', 'Role', 'RoleBinding', 'Service', 'ServiceAccount'].sort(),
    );
    const deployment = one(objs, 'Deployment', 'kvroute-operator', 'kvroute-system');
    expect((deployment.spec as { replicas: number }).replicas).toBe(2);
    const pod = podSpecOf(deployment);
    const container = pod.containers[0]!;
    const chart = YAML.parse(fs.readFileSync(path.join(ROOT, CHART, 'Chart.yaml'), 'utf8')) as { appVersion: string };
    expect(container.image).toBe(`ghcr.io/kvroute/kvroute:${chart.appVersion}`);
    expect(container.args).toEqual([
      'operator',
      '--leader-elect',
      '--leader-election-namespace=kvroute-system',
      '--lease-duration=10000',
      '--renew-deadline=7000',
      '--retry-period=1500',
      '--metrics-port=8080',
      '--health-port=8081',
      `--image=ghcr.io/kvroute/kvroute:${chart.appVersion}`,
      '--cluster-domain=cluster.local',
      '--resync=600000',
      '--log-level=info',
    ]);
    expect(container.livenessProbe!.httpGet).toEqual({ path: '/healthz', port: 'health' });
    expect(container.readinessProbe!.httpGet).toEqual({ path: '/readyz', port: 'health' });
    expect(container.ports).toEqual([
      { name: 'metrics', containerPort: 8080, protocol: 'TCP' },
      { name: 'health', containerPort: 8081, protocol: 'TCP' },
    ]);
    expect(container.resources).toEqual({ requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '512Mi' } });
    expect(restrictedV2Violations(pod)).toEqual([]);
    expect(pod.serviceAccountName).toBe(one(objs, 'ServiceAccount').metadata.name);
    const service = one(objs, 'Service', 'kvroute-operator-metrics');
    expect((service.spec as { ports: unknown[] }).ports).toEqual([
      { name: 'http-metrics', port: 8080, targetPort: 'metrics', protocol: 'TCP' },
    ]);
  });

  it('defaults the operator flags to what `kvroute operator` accepts (every flag the chart passes exists)', () => {
    const help = ok(nodeBinary(), ['bin/kvroute.js', 'operator', '--help']).stdout;
    for (const arg of argsOf(template(ALL_OPTIONS)).slice(1)) {
      const flag = arg.split('=')[0]!;
      expect([flag, help.includes(`${flag} `) || help.includes(`${flag}\n`)]).toEqual([flag, true]);
    }
  });

  it('grants exactly config/rbac in all-namespaces mode, so the chart and kustomize installs cannot drift', () => {
    const objs = template();
    const kustomizeRules = (file: string, kind: string) =>
      parseObjects(fs.readFileSync(path.join(ROOT, 'config/rbac', file), 'utf8')).find((o) => o.kind === kind)!.rules as Rule[];
    expect(rulesOf(one(objs, 'ClusterRole'))).toEqual(kustomizeRules('role.yaml', 'ClusterRole'));
    expect(rulesOf(one(objs, 'Role', 'kvroute-operator-leader-election', 'kvroute-system'))).toEqual(
      kustomizeRules('leader_election_role.yaml', 'Role'),
    );
  });

  it('with watchNamespace, moves every namespaced permission into a Role there and keeps a read-only ClusterRole', () => {
    const objs = template(['operator.watchNamespace=pools']);
    expect(argsOf(objs)).toContain('--namespace=pools');
    const cluster = rulesOf(one(objs, 'ClusterRole'));
    expect(cluster.flatMap((r) => r.verbs).filter((v) => !['get', 'list', 'watch'].includes(v))).toEqual([]);
    expect(cluster.flatMap((r) => r.resources).sort()).toEqual(['customresourcedefinitions', 'envoyfilters', 'namespaces']);
    const role = rulesOf(one(objs, 'Role', 'kvroute-operator', 'pools'));
    expect(role.some((r) => r.resources.includes('deployments') && r.verbs.includes('create'))).toBe(true);
    expect(role.some((r) => r.resources.includes('envoyfilters') && r.verbs.includes('create'))).toBe(true);
    expect(one(objs, 'RoleBinding', 'kvroute-operator', 'pools').subjects).toEqual([
      { kind: 'ServiceAccount', name: 'kvroute-operator', namespace: 'kvroute-system' },
    ]);
    // No gateway namespace listed: EnvoyFilters are written beside the pools only.
    expect(find(objs, 'Role', 'kvroute-operator-envoyfilters')).toEqual([]);
  });

  it('passes gatewayNamespaces to --gateway-namespaces, and with watchNamespace grants EnvoyFilter writes by a Role in each listed namespace only', () => {
    const clusterWide = template(['gatewayNamespaces={istio-system,gateways}']);
    expect(argsOf(clusterWide)).toContain('--gateway-namespaces=istio-system,gateways');
    // Pools in any namespace write their filter beside themselves, so all-namespaces mode keeps the
    // cluster-wide write; the operator refuses unlisted gateway namespaces itself.
    expect(rulesOf(one(clusterWide, 'ClusterRole')).filter((r) => r.resources.includes('envoyfilters'))).toEqual([
      { apiGroups: ['networking.istio.io'], resources: ['envoyfilters'], verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'] },
    ]);
    expect(find(clusterWide, 'Role', 'kvroute-operator-envoyfilters')).toEqual([]);
    expect(argsOf(template())).not.toContainEqual(expect.stringMatching(/^--gateway-namespaces/));

    const namespaced = template(['gatewayNamespaces={istio-system,gateways,pools}', 'operator.watchNamespace=pools']);
    expect(argsOf(namespaced)).toContain('--gateway-namespaces=istio-system,gateways,pools');
    expect(rulesOf(one(namespaced, 'ClusterRole')).filter((r) => r.resources.includes('envoyfilters'))).toEqual([
      { apiGroups: ['networking.istio.io'], resources: ['envoyfilters'], verbs: ['get', 'list', 'watch'] },
    ]);
    expect(
      find(namespaced, 'Role', 'kvroute-operator-envoyfilters')
        .map((r) => r.metadata.namespace)
        .sort(),
    ).toEqual(['gateways', 'istio-system']);
    for (const ns of ['istio-system', 'gateways']) {
      expect(rulesOf(one(namespaced, 'Role', 'kvroute-operator-envoyfilters', ns))).toEqual([
        { apiGroups: ['networking.istio.io'], resources: ['envoyfilters'], verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'] },
      ]);
      expect(one(namespaced, 'RoleBinding', 'kvroute-operator-envoyfilters', ns).roleRef).toEqual({
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'Role',
        name: 'kvroute-operator-envoyfilters',
      });
    }
  });

  it('renders the image by digest, a separate router image, monitors and the Grafana dashboard when asked', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    const objs = template([...ALL_OPTIONS, `image.digest=${digest}`, 'operator.routerImage=registry.example/kvroute:router']);
    const container = podSpecOf(one(objs, 'Deployment')).containers[0]!;
    expect(container.image).toBe(`ghcr.io/kvroute/kvroute@${digest}`);
    expect(container.args).toContain('--image=registry.example/kvroute:router');
    expect(one(objs, 'ServiceMonitor').spec).toMatchObject({
      endpoints: [{ port: 'http-metrics', path: '/metrics' }],
      namespaceSelector: { matchNames: ['kvroute-system'] },
    });
    const podMonitor = one(objs, 'PodMonitor').spec as { namespaceSelector: unknown; podMetricsEndpoints: { port: string }[] };
    expect(podMonitor.namespaceSelector).toEqual({ matchNames: ['pools'] });
    expect(podMonitor.podMetricsEndpoints.map((e) => e.port)).toEqual(['metrics', 'indexer-http', 'http']);
    const dashboard = one(objs, 'ConfigMap', 'kvroute-dashboard', 'monitoring');
    expect(dashboard.metadata.labels!.grafana_dashboard).toBe('1');
    const json = (dashboard.data as Record<string, string>)['kvroute.json']!;
    expect(JSON.parse(json)).toEqual(JSON.parse(fs.readFileSync(path.join(ROOT, CHART, 'dashboards/kvroute.json'), 'utf8')));
  });

  it.each([
    [['replicaCount=0'], [], '/replicaCount'],
    [[], ['replicaCount=two'], '/replicaCount'],
    [['image.pullPolicy=Sometimes'], [], '/image/pullPolicy'],
    [['image.digest=sha1:abc'], [], '/image/digest'],
    [['colour=blue'], [], "additional properties 'colour'"],
    [['operator.verbose=true'], [], "additional properties 'verbose'"],
    [['gatewayNamespaces={Not_A_Namespace}'], [], '/gatewayNamespaces/0'],
    [['operator.watchNamespace=UPPER'], [], '/operator/watchNamespace'],
    [['metrics.port=70000'], [], '/metrics/port'],
    [[], ['metrics.serviceMonitor.enabled=yes'], '/metrics/serviceMonitor/enabled'],
    [['operator.logLevel=loud'], [], '/operator/logLevel'],
    [['resources.requests.cpu=lots'], [], '/resources/requests/cpu'],
    [['operator.resyncMs=10'], [], '/operator/resyncMs'],
    [['operator.leaderElection.enabled=false'], [], 'replicaCount > 1 requires operator.leaderElection.enabled'],
    [['operator.leaderElection.renewDeadlineMs=20000'], [], 'renewDeadlineMs must be less than operator.leaderElection.leaseDurationMs'],
    [['metrics.port=8081'], [], 'metrics.port and health.port must differ'],
    [
      ['metrics.serviceMonitor.enabled=true', 'metrics.service.enabled=false'],
      [],
      'metrics.serviceMonitor.enabled requires metrics.service.enabled',
    ],
  ])('rejects %j %j, naming %s', (sets, setString, field) => {
    expect(templateError(sets, setString)).toContain(field);
  });

  it('has a draft-07 values schema with local $refs only (Helm 3.18.5+ and 4 would fetch remote ones)', () => {
    const schema = JSON.parse(fs.readFileSync(path.join(ROOT, CHART, 'values.schema.json'), 'utf8')) as Record<string, unknown>;
    expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
    expect(schema.additionalProperties).toBe(false);
    const refs: string[] = [];
    const walk = (node: unknown): void => {
      if (node === null || typeof node !== 'object') return;
      for (const [k, v] of Object.entries(node)) {
        if (k === '$ref') refs.push(String(v));
        walk(v);
      }
    };
    walk(schema);
    expect(refs.length).toBeGreaterThan(0);
    expect(refs.filter((r) => !r.startsWith('#/'))).toEqual([]);
    // Every top-level value in values.yaml is declared, so additionalProperties: false rejects only typos.
    const values = YAML.parse(fs.readFileSync(path.join(ROOT, CHART, 'values.yaml'), 'utf8')) as Record<string, unknown>;
    expect(Object.keys(values).filter((k) => !(k in (schema.properties as object)))).toEqual([]);
  });

  it('prints NOTES with the CRD upgrade step before helm upgrade', () => {
    const out = ok(helm!, ['install', 'kvroute', CHART, '--namespace', 'kvroute-system', '--dry-run=client']).stdout;
    const notes = out.slice(out.indexOf('NOTES:'));
    expect(notes).toContain('kubectl apply --server-side --force-conflicts -f charts/kvroute/crds/');
    expect(notes.indexOf('kubectl apply --server-side')).toBeLessThan(notes.indexOf('helm upgrade kvroute'));
  });

  it('ships the chart at the version of the package, with CRDs equal to crds/ (hack/chart-crds.sh --check)', () => {
    const chart = YAML.parse(fs.readFileSync(path.join(ROOT, CHART, 'Chart.yaml'), 'utf8')) as { version: string; appVersion: string };
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(chart.appVersion).toBe(pkg.version);
    expect(ok('bash', ['hack/chart-crds.sh', '--check']).stdout).toContain('chart CRDs match crds/');
    const crds = fs
      .readdirSync(path.join(ROOT, 'crds'))
      .filter((f) => /^kind: CustomResourceDefinition$/m.test(fs.readFileSync(path.join(ROOT, 'crds', f), 'utf8')));
    expect(fs.readdirSync(path.join(ROOT, CHART, 'crds')).sort()).toEqual(crds.sort());
    for (const f of crds)
      expect(fs.readFileSync(path.join(ROOT, CHART, 'crds', f), 'utf8')).toBe(fs.readFileSync(path.join(ROOT, 'crds', f), 'utf8'));
  });

  it('fails hack/chart-crds.sh --check, naming the file, when a chart CRD drifts from crds/, and fixes it without --check', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-chart-crds-'));
    try {
      for (const d of ['hack', 'crds', `${CHART}/crds`]) fs.mkdirSync(path.join(dir, d), { recursive: true });
      fs.copyFileSync(path.join(ROOT, 'hack/chart-crds.sh'), path.join(dir, 'hack/chart-crds.sh'));
      for (const f of fs.readdirSync(path.join(ROOT, 'crds'))) fs.copyFileSync(path.join(ROOT, 'crds', f), path.join(dir, 'crds', f));
      for (const f of fs.readdirSync(path.join(ROOT, CHART, 'crds')))
        fs.copyFileSync(path.join(ROOT, CHART, 'crds', f), path.join(dir, CHART, 'crds', f));
      const victim = fs.readdirSync(path.join(dir, CHART, 'crds'))[0]!;
      fs.appendFileSync(path.join(dir, CHART, 'crds', victim), '# edited by hand\n');
      fs.writeFileSync(path.join(dir, CHART, 'crds', 'stale.yaml'), 'kind: CustomResourceDefinition\n');
      const check = run('bash', [path.join(dir, 'hack/chart-crds.sh'), '--check']);
      expect(check.status).toBe(1);
      expect(check.stderr).toContain(`charts/kvroute/crds/${victim}`);
      expect(check.stderr).toContain('charts/kvroute/crds/stale.yaml (not in crds/)');
      ok('bash', [path.join(dir, 'hack/chart-crds.sh')]);
      expect(ok('bash', [path.join(dir, 'hack/chart-crds.sh'), '--check']).stdout).toContain('match');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describeKube('manifests against a real kube-apiserver with PodSecurity admission', () => {
  let env: KubeEnv;
  let client: KubeClient;
  const kc = (args: string[], input?: string) => run(kubectl!, [`--kubeconfig=${env.kubeconfigPath}`, ...args], { input });
  const kcOk = (args: string[], input?: string) => ok(kubectl!, [`--kubeconfig=${env.kubeconfigPath}`, ...args], { input });
  /** Server-side dry-run of every object; returns kubectl's stderr (its warnings). */
  const dryRun = (objs: unknown[]) => kcOk(['apply', '--server-side', '--dry-run=server', '-f', '-'], toYamlStream(objs)).stderr;

  /** A namespace whose PodSecurity admission enforces (and warns about) the restricted level. */
  const restrictedNamespace = (name: string) =>
    kcOk(
      ['apply', '--server-side', '-f', '-'],
      YAML.stringify({
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name, labels: { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/warn': 'restricted' } },
      }),
    );

  /** Applies CRDs for real (server-side, as the docs say) and waits until they are served. */
  const applyCrds = (objs: KubeObject[]) => {
    kcOk(['apply', '--server-side', '-f', '-'], toYamlStream(objs));
    kcOk(['wait', '--for=condition=Established', '--timeout=60s', ...objs.map((o) => `crd/${o.metadata.name}`)]);
  };

  /** The chart or kustomize output: CRDs and namespaces really applied, the rest and a Pod per workload dry-run. */
  const admit = (objs: KubeObject[]) => {
    applyCrds(objs.filter((o) => o.kind === 'CustomResourceDefinition'));
    for (const ns of objs.filter((o) => o.kind === 'Namespace')) kcOk(['apply', '--server-side', '-f', '-'], YAML.stringify(ns));
    const rest = objs.filter((o) => o.kind !== 'CustomResourceDefinition' && o.kind !== 'Namespace');
    const warnings = dryRun(rest);
    const pods = rest.flatMap((o) => podsOf([o], o.metadata.namespace!));
    expect(pods.length).toBeGreaterThan(0);
    const podWarnings = dryRun(pods);
    for (const p of pods) expect([p.metadata.name, restrictedV2Violations(p.spec as V1PodSpec)]).toEqual([p.metadata.name, []]);
    return `${warnings}${podWarnings}`;
  };

  beforeAll(async () => {
    env = await startKube();
    client = env.client;
    for (const [group, version, kind, plural] of [
      ['monitoring.coreos.com', 'v1', 'ServiceMonitor', 'servicemonitors'],
      ['monitoring.coreos.com', 'v1', 'PodMonitor', 'podmonitors'],
      ['networking.istio.io', 'v1alpha3', 'EnvoyFilter', 'envoyfilters'],
      ['networking.istio.io', 'v1', 'DestinationRule', 'destinationrules'],
    ] as const) {
      await installCrd(client, openCrd(group, version, kind, plural));
    }
  }, 180_000);

  afterAll(async () => {
    await env?.stop();
  }, 60_000);

  it('enforces restricted Pod Security here: a pod without a security context is rejected, a restricted one admitted', () => {
    restrictedNamespace('psa-check');
    const pod = (securityContext?: object, containerContext?: object) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'probe', namespace: 'psa-check' },
      spec: {
        ...(securityContext ? { securityContext } : {}),
        containers: [{ name: 'c', image: 'busybox', ...(containerContext ? { securityContext: containerContext } : {}) }],
      },
    });
    const rejected = kc(['apply', '--server-side', '--dry-run=server', '-f', '-'], YAML.stringify(pod()));
    expect(rejected.status).not.toBe(0);
    expect(rejected.stderr).toMatch(/violates PodSecurity "restricted:latest"/);
    expect(rejected.stderr).toMatch(/allowPrivilegeEscalation != false/);
    const admitted = kc(
      ['apply', '--server-side', '--dry-run=server', '-f', '-'],
      YAML.stringify(
        pod(
          { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
          { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
        ),
      ),
    );
    expect(admitted.stderr).toBe('');
    expect(admitted.status).toBe(0);
  });

  it('admits the chart with default values: CRDs applied, everything else dry-run in a restricted namespace, no PodSecurity warning', () => {
    restrictedNamespace('chart-default');
    const objs = template([], { namespace: 'chart-default', extra: ['--include-crds'] });
    expect(objs.filter((o) => o.kind === 'CustomResourceDefinition')).toHaveLength(2);
    expect(admit(objs)).not.toMatch(/PodSecurity|Warning/);
  });

  it('admits the chart with every option on (watch namespace, gateway Roles, monitors, dashboard)', () => {
    for (const ns of ['chart-all', 'pools', 'istio-system', 'gateways', 'monitoring']) restrictedNamespace(ns);
    const objs = template(ALL_OPTIONS, { namespace: 'chart-all', extra: ['--include-crds'] });
    expect(
      objs
        .filter((o) => o.kind === 'CustomResourceDefinition')
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual(['inferencemodels.inference.kvroute.io', 'inferencepools.inference.kvroute.io']);
    expect(admit(objs)).not.toMatch(/PodSecurity|Warning/);
  });

  it('admits `kubectl kustomize config/default`: its namespace enforces restricted, CRDs applied first, the rest dry-run', () => {
    const objs = parseObjects(kcOk(['kustomize', 'config/default']).stdout);
    const ns = one(objs, 'Namespace', 'kvroute-system');
    expect(ns.metadata.labels!['pod-security.kubernetes.io/enforce']).toBe('restricted');
    expect(admit(objs)).not.toMatch(/PodSecurity|Warning/);
    expect(restrictedV2Violations(podSpecOf(one(objs, 'Deployment', 'kvroute-operator')))).toEqual([]);
  });

  it('validates config/samples against the CRDs (server-side dry-run), and the CRDs reject a broken sample', () => {
    applyCrds(parseObjects(kcOk(['kustomize', 'config/crd']).stdout));
    const samples = parseObjects(kcOk(['kustomize', 'config/samples']).stdout);
    expect(samples.map((s) => `${s.kind}/${s.metadata.name}`).sort()).toEqual([
      'InferenceModel/chat',
      'InferencePool/gpt-oss',
      'InferencePool/llama',
      'InferencePool/qwen',
    ]);
    expect(dryRun(samples)).toBe('');
    const broken = structuredClone(samples.find((s) => s.metadata.name === 'qwen')!) as KubeObject & { spec: Record<string, unknown> };
    delete broken.spec.selector;
    const r = kc(['apply', '--server-side', '--dry-run=server', '-f', '-'], YAML.stringify(broken));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('selector is required when modelServer is absent');
  });

  it('admits the pods the operator renders for the samples (`kvroute render`): router with its indexer sidecar, and vLLM', () => {
    restrictedNamespace('pools-restricted');
    const rendered = parseObjects(
      ok(nodeBinary(), [
        'bin/kvroute.js',
        'render',
        '-f',
        'config/samples/inferencepool_llama.yaml',
        '-f',
        'config/samples/inferencepool_adopted.yaml',
        '-f',
        'config/samples/inferencemodel_chat.yaml',
        '--gateway-namespaces',
        'istio-system',
      ]).stdout,
    );
    // Moved into a restricted namespace; owner references name pools that do not exist here, and admission does not need them.
    const deployments = rendered
      .filter((o) => o.kind === 'Deployment')
      .map((o) => ({
        ...o,
        metadata: { ...o.metadata, namespace: 'pools-restricted', ownerReferences: undefined } as KubeObject['metadata'],
      }));
    expect(deployments.map((d) => d.metadata.name).sort()).toEqual(['llama-router', 'llama-vllm', 'qwen-router']);
    expect(dryRun(deployments)).not.toMatch(/PodSecurity|Warning/);
    const pods = podsOf(deployments, 'pools-restricted');
    expect(dryRun(pods)).not.toMatch(/PodSecurity|Warning/);
    for (const p of pods) expect([p.metadata.name, restrictedV2Violations(p.spec as V1PodSpec)]).toEqual([p.metadata.name, []]);
    const vllm = (pods.find((p) => p.metadata.name === 'llama-vllm-pod')!.spec as V1PodSpec).containers[0]!;
    expect(vllm.volumeMounts!.map((m) => m.mountPath)).toEqual(expect.arrayContaining(['/tmp', '/home/vllm']));
    expect(vllm.env!.find((e) => e.name === 'HOME')?.value).toBe('/home/vllm');
  });

  /**
   * Installs the chart's RBAC (really) for a release, creates the samples (and extra pools) in
   * `poolNamespace`, and runs the operator in-process as the release's ServiceAccount, with the
   * namespace and gateway allowlist the chart passes it, until every pool has been reconciled. Returns
   * what the operator logged, the pools' Degraded conditions and the ServiceAccount's user name.
   */
  async function operateWithChartRbac(release: string, sets: string[], poolNamespace: string, extraPools: object[]) {
    for (const ns of [release, poolNamespace, 'istio-system', 'gw-denied']) restrictedNamespace(ns);
    applyCrds(parseObjects(kcOk(['kustomize', 'config/crd']).stdout));
    const rendered = template(sets, { namespace: release, release });
    const rbac = rendered.filter((o) => ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'].includes(o.kind));
    kcOk(['apply', '--server-side', '-f', '-'], toYamlStream(rbac));
    const samples = [...parseObjects(kcOk(['kustomize', 'config/samples']).stdout), ...(extraPools as KubeObject[])].map((s) => ({
      ...s,
      metadata: { ...s.metadata, namespace: poolNamespace },
    }));
    kcOk(['apply', '--server-side', '-f', '-'], toYamlStream(samples));
    const sa = one(rbac, 'ServiceAccount').metadata.name;
    const { kubeConfig } = await serviceAccountKubeconfig(env, release, sa, `${release}.kubeconfig`);
    const args = argsOf(rendered);
    const flag = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
    let log = '';
    const watch = flag('namespace');
    const operator = new Operator({
      kubeConfig,
      ...(watch ? { namespace: watch } : {}),
      gatewayNamespaces: flag('gateway-namespaces')?.split(',') ?? [],
      leaderElect: true,
      leaseNamespace: flag('leader-election-namespace')!,
      retryPeriodMs: 200,
      defaultImage: flag('image')!,
      clusterDomain: flag('cluster-domain')!,
      resyncMs: 60_000,
      log: createLogger({ level: 'warn', write: (line) => (log += `${line}\n`) }),
      registry: createRegistry(),
    });
    try {
      await operator.start();
      await until(() => operator.isLeader, { message: `the ${release} operator to lead`, timeoutMs: 20_000 });
      const degraded = new Map<string, Condition>();
      for (const name of samples.filter((s) => s.kind === 'InferencePool').map((s) => s.metadata.name)) {
        const c = await until(
          async () => {
            const p = await client.get<{ status?: { conditions?: Condition[] } }>(
              resourcePath('inference.kvroute.io/v1alpha1', 'InferencePool', poolNamespace, name),
            );
            return p.status?.conditions?.find((x) => x.type === 'Degraded');
          },
          { message: `pool ${poolNamespace}/${name} reconciled`, timeoutMs: 30_000 },
        );
        degraded.set(name, c);
      }
      return { log, degraded, user: `system:serviceaccount:${release}:${sa}` };
    } finally {
      await operator.stop();
    }
  }

  const envoyFilterExists = (namespace: string, name: string) =>
    client.get(resourcePath('networking.istio.io/v1alpha3', 'EnvoyFilter', namespace, name)).then(
      () => true,
      () => false,
    );
  /** `kubectl auth can-i` as another user: a SubjectAccessReview against the live RBAC. */
  const canCreateEnvoyFilter = (user: string, namespace: string) =>
    kc(['auth', 'can-i', 'create', 'envoyfilters.networking.istio.io', '--namespace', namespace, `--as=${user}`]).stdout.trim();

  /** A pool (no model servers) whose EnvoyFilter the operator must not write: its gateway namespace is not listed. */
  const deniedPool = {
    apiVersion: 'inference.kvroute.io/v1alpha1',
    kind: 'InferencePool',
    metadata: { name: 'denied' },
    spec: {
      model: { name: 'Qwen/Qwen3-8B' },
      selector: { matchLabels: { app: 'denied' } },
      gateway: {
        envoyFilter: true,
        namespace: 'gw-denied',
        workloadSelector: { istio: 'ingressgateway' },
        routeNames: ['denied'],
        backendRef: { name: 'denied-vllm', port: 8000 },
      },
    },
  };

  it('gives the operator all it needs with the chart RBAC in all-namespaces mode: the samples reconcile without a forbidden request', async () => {
    const { log, degraded, user } = await operateWithChartRbac('rbac-cluster', ['gatewayNamespaces={istio-system}'], 'pools-a', [
      deniedPool,
    ]);
    expect(degraded.get('llama')).toMatchObject({ status: 'False', reason: 'AsExpected' });
    expect(degraded.get('qwen')).toMatchObject({ status: 'False', reason: 'AsExpected' });
    expect(await envoyFilterExists('pools-a', 'llama-ext-proc')).toBe(true);
    expect(await envoyFilterExists('istio-system', 'pools-a-qwen-ext-proc')).toBe(true);
    expect(await client.get(resourcePath('networking.istio.io/v1', 'DestinationRule', 'pools-a', 'llama-router')).then(() => true)).toBe(
      true,
    );
    // RBAC here cannot know the pools' namespaces; the operator enforces --gateway-namespaces itself.
    expect(canCreateEnvoyFilter(user, 'gw-denied')).toBe('yes');
    expect(degraded.get('denied')).toMatchObject({ status: 'True', reason: 'NotAllowed' });
    expect(await envoyFilterExists('gw-denied', 'pools-a-denied-ext-proc')).toBe(false);
    expect(log).not.toMatch(/forbidden/i);
  }, 120_000);

  it('with watchNamespace and gatewayNamespaces, RBAC itself lets the operator write EnvoyFilters only in its namespace and the listed ones', async () => {
    const { log, degraded, user } = await operateWithChartRbac(
      'rbac-namespaced',
      ['operator.watchNamespace=pools-b', 'gatewayNamespaces={istio-system}'],
      'pools-b',
      [deniedPool],
    );
    expect(degraded.get('llama')).toMatchObject({ status: 'False', reason: 'AsExpected' });
    expect(degraded.get('qwen')).toMatchObject({ status: 'False', reason: 'AsExpected' });
    expect(await envoyFilterExists('pools-b', 'llama-ext-proc')).toBe(true);
    expect(await envoyFilterExists('istio-system', 'pools-b-qwen-ext-proc')).toBe(true);
    expect(await client.get(resourcePath('networking.istio.io/v1', 'DestinationRule', 'pools-b', 'llama-router')).then(() => true)).toBe(
      true,
    );
    expect(degraded.get('denied')).toMatchObject({ status: 'True', reason: 'NotAllowed' });
    expect(await envoyFilterExists('gw-denied', 'pools-b-denied-ext-proc')).toBe(false);
    expect([
      canCreateEnvoyFilter(user, 'pools-b'),
      canCreateEnvoyFilter(user, 'istio-system'),
      canCreateEnvoyFilter(user, 'gw-denied'),
      canCreateEnvoyFilter(user, 'pools-a'),
    ]).toEqual(['yes', 'yes', 'no', 'no']);
    expect(kc(['auth', 'can-i', 'create', 'deployments.apps', '--namespace', 'pools-a', `--as=${user}`]).stdout.trim()).toBe('no');
    expect(log).not.toMatch(/forbidden/i);
  }, 120_000);
});

/** The ```sh blocks of docs/install.md, by `## section` and `### subsection`. */
function installDocBlocks(): Map<string, string[]> {
  const blocks = new Map<string, string[]>();
  let section = '';
  let sub = '';
  let current: string[] | undefined;
  for (const line of fs.readFileSync(path.join(ROOT, 'docs/install.md'), 'utf8').split('\n')) {
    if (current) {
      if (line.startsWith('```')) {
        const key = `${section} / ${sub}`;
        blocks.set(key, [...(blocks.get(key) ?? []), current.join('\n')]);
        current = undefined;
      } else current.push(line);
      continue;
    }
    if (line.startsWith('## ')) [section, sub] = [line.slice(3).trim(), ''];
    else if (line.startsWith('### ')) sub = line.slice(4).trim();
    else if (line.trim() === '```sh') current = [];
  }
  return blocks;
}

describeKube('docs/install.md, run as written', () => {
  let env: KubeEnv;
  let client: KubeClient;
  let namespaceController: ChildProcess | undefined;
  let shellEnv: NodeJS.ProcessEnv;
  const blocks = installDocBlocks();
  const CRD_NAMES = ['inferencepools.inference.kvroute.io', 'inferencemodels.inference.kvroute.io'];

  /** Runs one documented block with bash -euo pipefail, `kubectl` and `helm` on PATH pointing at this cluster. */
  const runDoc = (key: string) => {
    const found = blocks.get(key);
    if (!found?.length) throw new Error(`docs/install.md has no \`\`\`sh block under ${key}`);
    for (const block of found) ok('bash', ['-euo', 'pipefail', '-c', block], { env: shellEnv });
  };
  const exists = (p: string) =>
    client.get(p).then(
      () => true,
      () => false,
    );
  const crdPath = (name: string) => `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`;

  beforeAll(async () => {
    env = await startKube();
    client = env.client;
    const bin = path.join(env.dir, 'bin');
    fs.mkdirSync(bin);
    fs.symlinkSync(kubectl!.includes('/') ? path.resolve(kubectl!) : kubectl!, path.join(bin, 'kubectl'));
    fs.symlinkSync(helm!, path.join(bin, 'helm'));
    const home = path.join(env.dir, 'home');
    fs.mkdirSync(home);
    shellEnv = {
      PATH: `${bin}:${process.env.PATH}`,
      KUBECONFIG: env.kubeconfigPath,
      HOME: home,
      HELM_CACHE_HOME: path.join(home, 'cache'),
      HELM_CONFIG_HOME: path.join(home, 'config'),
      HELM_DATA_HOME: path.join(home, 'data'),
    };
    // Deleting a namespace (the kubectl uninstall) completes only when the namespace controller empties it.
    const logFile = path.join(env.dir, 'namespace-controller.log');
    const out = fs.openSync(logFile, 'w');
    namespaceController = spawn(
      path.join(KUBE_BIN_DIR, 'kube-controller-manager'),
      [`--kubeconfig=${env.kubeconfigPath}`, '--controllers=namespace-controller', '--leader-elect=false', '--secure-port=0', '--v=2'],
      { stdio: ['ignore', out, out] },
    );
    await until(() => namespaceController!.exitCode === null && /Starting namespace controller/.test(fs.readFileSync(logFile, 'utf8')), {
      message: 'the namespace controller to start',
      timeoutMs: 60_000,
      intervalMs: 200,
    });
  }, 180_000);

  afterAll(async () => {
    if (namespaceController) await stopChild(namespaceController, 5000);
    await env?.stop();
  }, 60_000);

  it('documents Install, Upgrade and Uninstall for kubectl and Helm, with Argo CD and OperatorHub sections', () => {
    for (const s of ['kubectl', 'Helm'])
      for (const sub of ['Install', 'Upgrade', 'Uninstall']) expect([s, sub, blocks.has(`${s} / ${sub}`)]).toEqual([s, sub, true]);
    const headings = fs
      .readFileSync(path.join(ROOT, 'docs/install.md'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('## '));
    expect(headings).toEqual(expect.arrayContaining(['## kubectl', '## Helm', '## Argo CD', '## OperatorHub (OLM)']));
  });

  it('installs, upgrades and uninstalls with the kubectl commands of docs/install.md', async () => {
    runDoc('kubectl / Install');
    for (const crd of CRD_NAMES) expect(await exists(crdPath(crd))).toBe(true);
    const deployment = await client.get<{ spec: { replicas: number } }>(
      resourcePath('apps/v1', 'Deployment', 'kvroute-system', 'kvroute-operator'),
    );
    expect(deployment.spec.replicas).toBe(2);
    expect(await exists(resourcePath('inference.kvroute.io/v1alpha1', 'InferencePool', 'default', 'llama'))).toBe(true);
    expect(await exists(resourcePath('inference.kvroute.io/v1alpha1', 'InferenceModel', 'default', 'chat'))).toBe(true);

    runDoc('kubectl / Upgrade');
    expect(await exists(resourcePath('apps/v1', 'Deployment', 'kvroute-system', 'kvroute-operator'))).toBe(true);

    runDoc('kubectl / Uninstall');
    for (const crd of CRD_NAMES) expect(await exists(crdPath(crd))).toBe(false);
    expect(await exists('/api/v1/namespaces/kvroute-system')).toBe(false);
    expect(await exists('/apis/rbac.authorization.k8s.io/v1/clusterroles/kvroute-operator')).toBe(false);
  }, 180_000);

  it('installs with Helm (which creates the CRDs), upgrades the CRDs with kubectl as documented (helm upgrade alone does not), and uninstalls', async () => {
    await until(async () => !(await exists('/api/v1/namespaces/kvroute-system')), {
      message: 'no kvroute-system namespace left by another test',
      timeoutMs: 60_000,
    });
    runDoc('Helm / Install');
    for (const crd of CRD_NAMES) expect(await exists(crdPath(crd))).toBe(true);
    const ns = await client.get<{ metadata: { labels: Record<string, string> } }>('/api/v1/namespaces/kvroute-system');
    expect(ns.metadata.labels['pod-security.kubernetes.io/enforce']).toBe('restricted');
    expect(await exists(resourcePath('apps/v1', 'Deployment', 'kvroute-system', 'kvroute-operator'))).toBe(true);

    // An older CRD, as a previous chart version would have left it: one schema description differs.
    const crdFile = parseObjects(fs.readFileSync(path.join(ROOT, CHART, 'crds/inference.kvroute.io_inferencepools.yaml'), 'utf8'))[0]!;
    const pointer = firstDescription(crdFile, '/spec/versions/0/schema/openAPIV3Schema');
    expect(pointer).toBeDefined();
    const current = readPointer(crdFile, pointer!);
    ok(kubectl!, [
      `--kubeconfig=${env.kubeconfigPath}`,
      'patch',
      'crd',
      crdFile.metadata.name,
      '--type=json',
      '-p',
      JSON.stringify([{ op: 'replace', path: pointer, value: 'from an older chart' }]),
    ]);
    const live = () => client.get<KubeObject>(crdPath(crdFile.metadata.name)).then((crd) => readPointer(crd, pointer!));
    expect(await live()).toBe('from an older chart');

    ok('helm', ['upgrade', 'kvroute', CHART, '--namespace', 'kvroute-system'], { env: shellEnv });
    expect(await live()).toBe('from an older chart');

    runDoc('Helm / Upgrade');
    expect(await live()).toBe(current);
    expect(ok('helm', ['history', 'kvroute', '--namespace', 'kvroute-system', '--output', 'json'], { env: shellEnv }).stdout).toMatch(
      /"revision":3/,
    );

    runDoc('Helm / Uninstall');
    expect(await exists(resourcePath('apps/v1', 'Deployment', 'kvroute-system', 'kvroute-operator'))).toBe(false);
    for (const crd of CRD_NAMES) expect(await exists(crdPath(crd))).toBe(false);
    // Leave the namespace as the kubectl test expects to find it: absent.
    ok(kubectl!, [`--kubeconfig=${env.kubeconfigPath}`, 'delete', 'namespace', 'kvroute-system']);
  }, 180_000);
});

/** JSON pointer of the first `description` string under `base` (depth first), e.g. a field's doc in a CRD schema. */
function firstDescription(obj: unknown, base: string): string | undefined {
  const start = readPointer(obj, base);
  const walk = (node: unknown, at: string): string | undefined => {
    if (node === null || typeof node !== 'object') return undefined;
    for (const [k, v] of Object.entries(node)) {
      const here = `${at}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`;
      if (k === 'description' && typeof v === 'string' && at !== base) return here;
      const deeper = walk(v, here);
      if (deeper) return deeper;
    }
    return undefined;
  };
  return walk(start, base);
}

function readPointer(obj: unknown, pointer: string): unknown {
  let node = obj;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    node = (node as Record<string, unknown> | undefined)?.[key];
  }
  return node;
}
