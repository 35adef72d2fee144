// The OLM bundle: bundle/ is what hack/bundle/generate.ts renders from config/, crds/ and hack/bundle/;
// operator-framework's own validators (hack/olm/validate.sh, github.com/operator-framework/api) accept it
// without a warning and reject broken copies naming the problem; and its Deployment runs `kvroute
// operator` with flags the real CLI accepts, watching what the OperatorGroup targets.

import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { renderBundle } from '../hack/bundle/generate.ts';
import { command as operatorCommand } from '../src/cli/operator.ts';
import { InferenceModel } from '../src/api/inference-model.ts';
import { InferencePool } from '../src/api/inference-pool.ts';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CSV_FILE = 'bundle/manifests/kvroute.clusterserviceversion.yaml';
const VALIDATE = path.join(ROOT, 'hack/olm/validate.sh');

type Json = Record<string, unknown>;
interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}
interface Container {
  name: string;
  args: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
}
interface Csv {
  metadata: { name: string; annotations: Record<string, string> };
  spec: {
    installModes: { type: string; supported: boolean }[];
    maintainers: { name: string; email?: string }[];
    customresourcedefinitions: { owned: { name: string; version: string; kind: string }[] };
    install: {
      spec: {
        permissions: { serviceAccountName: string; rules: Rule[] }[];
        clusterPermissions: { serviceAccountName: string; rules: Rule[] }[];
        deployments: {
          name: string;
          spec: { template: { metadata?: { annotations?: Record<string, string> }; spec: { containers: Container[] } } };
        }[];
      };
    };
  };
}

const readCsv = (root = ROOT): Csv => YAML.parse(fs.readFileSync(path.join(root, CSV_FILE), 'utf8')) as Csv;

function goAvailable(): boolean {
  return spawnSync('go', ['version'], { encoding: 'utf8' }).status === 0;
}

/** A scratch copy of what the generator reads and writes, so tests may break it. */
function copyRepoInputs(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-bundle-'));
  for (const entry of ['package.json', 'crds', 'config', 'hack/bundle', 'bundle', 'bundle.Dockerfile']) {
    fs.cpSync(path.join(ROOT, entry), path.join(dir, entry), { recursive: true });
  }
  return dir;
}

async function validate(dir: string): Promise<{ code: number; output: string }> {
  return run('bash', [VALIDATE, '--fail-on-warnings', dir], { timeout: 120_000, maxBuffer: 16 << 20 }).then(
    (r) => ({ code: 0, output: r.stdout + r.stderr }),
    (err: { code?: number; stdout?: string; stderr?: string }) => ({
      code: err.code ?? -1,
      output: `${err.stdout ?? ''}${err.stderr ?? ''}`,
    }),
  );
}

/** Kubernetes' $(VAR) expansion of container args from the container's env. */
function expandArgs(args: readonly string[], env: Record<string, string>): string[] {
  return args.map((a) => a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => env[name] ?? whole));
}

describe('the generated OLM bundle', () => {
  it('is what hack/bundle/generate.ts renders from config/, crds/ and hack/bundle/ (node hack/bundle/generate.ts --check)', () => {
    for (const [file, text] of Object.entries(renderBundle(ROOT))) {
      expect({ file, text: fs.readFileSync(path.join(ROOT, file), 'utf8') }).toEqual({ file, text });
    }
  });

  it('--check fails naming a stale file, and a regeneration makes it pass', async () => {
    const dir = copyRepoInputs();
    try {
      const script = path.join(ROOT, 'hack/bundle/generate.ts');
      fs.appendFileSync(path.join(dir, 'bundle/metadata/annotations.yaml'), '  hand-edit: "true"\n');
      fs.writeFileSync(path.join(dir, 'bundle/manifests/leftover.yaml'), 'kind: ConfigMap\n');
      const stale = spawnSync(process.execPath, [script, '--check', `--root=${dir}`], { encoding: 'utf8' });
      expect({ status: stale.status, stderr: stale.stderr }).toEqual({
        status: 1,
        stderr: expect.stringMatching(/bundle is stale \(bundle\/metadata\/annotations\.yaml, bundle\/manifests\/leftover\.yaml\)/),
      });
      expect(spawnSync(process.execPath, [script, `--root=${dir}`], { encoding: 'utf8' }).status).toBe(0);
      expect(spawnSync(process.execPath, [script, '--check', `--root=${dir}`], { encoding: 'utf8' }).status).toBe(0);
      expect(fs.existsSync(path.join(dir, 'bundle/manifests/leftover.yaml'))).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('copies the CRDs from crds/ byte for byte and owns each at its storage version', () => {
    const csv = readCsv();
    const crdFiles = (
      YAML.parse(fs.readFileSync(path.join(ROOT, 'config/crd/kustomization.yaml'), 'utf8')) as { resources: string[] }
    ).resources.map((r) => path.basename(r));
    expect(crdFiles.length).toBeGreaterThan(0);
    const owned = crdFiles.map((file) => {
      const text = fs.readFileSync(path.join(ROOT, 'crds', file), 'utf8');
      expect(fs.readFileSync(path.join(ROOT, 'bundle/manifests', file), 'utf8')).toBe(text);
      const crd = YAML.parse(text) as {
        metadata: { name: string };
        spec: { names: { kind: string }; versions: { name: string; storage: boolean }[] };
      };
      return { name: crd.metadata.name, version: crd.spec.versions.find((v) => v.storage)!.name, kind: crd.spec.names.kind };
    });
    expect(csv.spec.customresourcedefinitions.owned.map(({ name, version, kind }) => ({ name, version, kind }))).toEqual(owned);
  });

  it('carries config/samples as alm-examples that parse with the API schemas the CRDs come from', () => {
    const csv = readCsv();
    const examples = JSON.parse(csv.metadata.annotations['alm-examples']!) as { kind: string; metadata: Json }[];
    const samples = (YAML.parse(fs.readFileSync(path.join(ROOT, 'config/samples/kustomization.yaml'), 'utf8')) as { resources: string[] })
      .resources;
    expect(examples).toHaveLength(samples.length);
    for (const example of examples) {
      const schema = example.kind === 'InferencePool' ? InferencePool : InferenceModel;
      const parsed = schema.safeParse(example);
      expect({ name: example.metadata.name, issues: parsed.success ? [] : parsed.error.issues }).toEqual({
        name: example.metadata.name,
        issues: [],
      });
      expect(example.metadata.namespace).toBeUndefined(); // the console fills in the namespace being viewed
    }
  });

  it('labels bundle.Dockerfile with exactly the keys and values of bundle/metadata/annotations.yaml', () => {
    const annotations = (
      YAML.parse(fs.readFileSync(path.join(ROOT, 'bundle/metadata/annotations.yaml'), 'utf8')) as { annotations: Record<string, string> }
    ).annotations;
    const labels = Object.fromEntries(
      fs
        .readFileSync(path.join(ROOT, 'bundle.Dockerfile'), 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('LABEL operators.operatorframework.io.'))
        .map((l) => l.slice('LABEL '.length).split('=') as [string, string]),
    );
    expect(labels).toEqual(annotations);
    expect(annotations['operators.operatorframework.io.bundle.package.v1']).toBe('kvroute');
    expect(annotations['operators.operatorframework.io.bundle.mediatype.v1']).toBe('registry+v1');
  });

  it('grants namespaced RBAC per watched namespace and only cluster-scoped or cross-namespace RBAC cluster-wide', () => {
    const { permissions, clusterPermissions } = readCsv().spec.install.spec;
    const grants = (rules: Rule[]) =>
      rules.flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${g}/${res}:${v}`))));
    const cluster = new Set(grants(clusterPermissions[0]!.rules));
    const target = new Set(grants(permissions[0]!.rules));
    expect([...new Set([...cluster].map((g) => g.split(':')[0]))].sort()).toEqual([
      '/namespaces',
      'apiextensions.k8s.io/customresourcedefinitions',
      'networking.istio.io/envoyfilters',
    ]);
    // Every grant of config/rbac is in exactly one of the two.
    const configured = fs
      .readdirSync(path.join(ROOT, 'config/rbac'))
      .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
      .flatMap((f) =>
        YAML.parseAllDocuments(fs.readFileSync(path.join(ROOT, 'config/rbac', f), 'utf8')).map(
          (d) => d.toJS() as { kind: string; rules?: Rule[] },
        ),
      )
      .filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role')
      .flatMap((o) => grants(o.rules ?? []));
    for (const grant of configured)
      expect({ grant, cluster: cluster.has(grant), target: target.has(grant) }).toEqual({
        grant,
        cluster: cluster.has(grant),
        target: !cluster.has(grant),
      });
    expect(cluster.size + target.size).toBe(new Set(configured).size);
    expect(
      grants(clusterPermissions[0]!.rules).some(
        (g) => g.startsWith('apiextensions.k8s.io/customresourcedefinitions:') && !/:(get|list|watch)$/.test(g),
      ),
    ).toBe(false);
  });

  it('runs `kvroute operator` with flags the real CLI accepts, watching all namespaces or the one the OperatorGroup targets', () => {
    const csv = readCsv();
    const modes = Object.fromEntries(csv.spec.installModes.map((m) => [m.type, m.supported]));
    // --namespace takes one namespace; OLM would hand a MultiNamespace group's list as "a,b".
    expect(modes).toEqual({ OwnNamespace: true, SingleNamespace: true, MultiNamespace: false, AllNamespaces: true });
    const container = csv.spec.install.spec.deployments[0]!.spec.template.spec.containers.find((c) => c.args[0] === 'operator')!;
    const fieldRef = (name: string) => container.env?.find((e) => e.name === name)?.valueFrom?.fieldRef?.fieldPath;
    expect(fieldRef('WATCH_NAMESPACE')).toBe("metadata.annotations['olm.targetNamespaces']");
    expect(fieldRef('POD_NAMESPACE')).toBe('metadata.namespace');

    const parse = (targetNamespaces: string) => {
      const cmd = operatorCommand().exitOverride();
      const { operands, unknown } = cmd.parseOptions(
        expandArgs(container.args.slice(1), { WATCH_NAMESPACE: targetNamespaces, POD_NAMESPACE: 'operators' }),
      );
      return {
        operands,
        unknown,
        namespace: (cmd.opts() as { namespace?: string }).namespace || 'all',
        leaderElect: (cmd.opts() as { leaderElect?: boolean }).leaderElect,
      };
    };
    expect(parse('')).toEqual({ operands: [], unknown: [], namespace: 'all', leaderElect: true }); // AllNamespaces
    expect(parse('team-a')).toEqual({ operands: [], unknown: [], namespace: 'team-a', leaderElect: true }); // Own/SingleNamespace
  });

  it('refuses a descriptor path that is not a field of the CRD, and RBAC it cannot place, naming each', () => {
    const dir = copyRepoInputs();
    try {
      const baseFile = path.join(dir, 'hack/bundle/csv-base.yaml');
      const base = fs.readFileSync(baseFile, 'utf8');
      fs.writeFileSync(baseFile, base.replace('path: router.replicas', 'path: router.replicaCount'));
      expect(() => renderBundle(dir)).toThrow(
        'spec.owned.InferencePool.specDescriptors path "router.replicaCount" is not a field of InferencePool spec',
      );
      fs.writeFileSync(baseFile, base);

      const roleFile = path.join(dir, 'config/rbac/role.yaml');
      fs.appendFileSync(roleFile, '  - apiGroups: [batch]\n    resources: [jobs]\n    verbs: [create]\n');
      expect(() => renderBundle(dir)).toThrow('"jobs" in apiGroup "batch" is not classified in RESOURCE_SCOPE');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

// Skipped (with the reason in the title) only when Go is absent and KVROUTE_REQUIRE_OLM is unset; CI sets
// it, so there a missing toolchain fails the build step instead.
const olmEnabled = goAvailable() || Boolean(process.env.KVROUTE_REQUIRE_OLM);
const SKIP_REASON = 'skipped: no Go toolchain to build hack/olm/validate; set KVROUTE_REQUIRE_OLM=1 to fail instead';
if (!olmEnabled) console.warn(`e2e/olm-bundle.test.ts ${SKIP_REASON}`);
const describeOlm = olmEnabled ? describe : describe.skip;

/** Broken copies of the bundle, each with the line operator-framework's validators must answer with. */
const breakages: Array<[string, (dir: string) => void, string]> = [
  [
    'a CSV owning a CRD the bundle lacks',
    (dir) => fs.rmSync(path.join(dir, 'bundle/manifests/inference.kvroute.io_inferencepools.yaml')),
    'ERROR [bundle] 0.1.0: Error: Value inference.kvroute.io/v1alpha1, Kind=InferencePool: owned CRD "inference.kvroute.io/v1alpha1, Kind=InferencePool" not found in bundle "kvroute.v0.1.0"',
  ],
  [
    'a maintainer without an email',
    (dir) => editCsv(dir, (csv) => (csv.spec.maintainers = [{ name: 'kvroute maintainers' }])),
    'csv.Spec.Maintainers elements should contain both name and email',
  ],
  [
    "a category outside OperatorHub's list",
    (dir) => editCsv(dir, (csv) => (csv.metadata.annotations.categories = 'AI/Machine Learning,Inference Routing')),
    'csv.Metadata.Annotations["categories"] value "Inference Routing" is not in the set of standard categories',
  ],
  [
    'an alm-example of a kind the CSV does not provide',
    (dir) =>
      editCsv(
        dir,
        (csv) =>
          (csv.metadata.annotations['alm-examples'] = JSON.stringify([
            { apiVersion: 'inference.kvroute.io/v1alpha1', kind: 'InferenceRoute', metadata: { name: 'x' }, spec: {} },
          ])),
      ),
    'example must have a provided API',
  ],
  [
    'no supported install mode',
    (dir) => editCsv(dir, (csv) => csv.spec.installModes.forEach((m) => (m.supported = false))),
    'none of InstallModeTypes are supported',
  ],
];

function editCsv(dir: string, edit: (csv: Csv) => void): void {
  const file = path.join(dir, CSV_FILE);
  const csv = YAML.parse(fs.readFileSync(file, 'utf8')) as Csv;
  edit(csv);
  fs.writeFileSync(file, YAML.stringify(csv, { lineWidth: 0 }));
}

describeOlm(olmEnabled ? "operator-framework's bundle validators" : `operator-framework's bundle validators (${SKIP_REASON})`, () => {
  const scratch: string[] = [];

  beforeAll(async () => {
    // Builds the validator on the first run (minutes on 2 cores); later runs find it cached.
    await run('bash', [VALIDATE, '--build-only'], { timeout: 900_000, maxBuffer: 64 << 20 });
  }, 900_000);
  afterAll(() => {
    for (const dir of scratch) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('accept bundle/ with no error and no warning (OperatorHub, good practices and object suites included)', async () => {
    const result = await validate(path.join(ROOT, 'bundle'));
    expect(result).toEqual({
      code: 0,
      output: expect.stringContaining('(kvroute.v0.1.0, minKubeVersion "1.29.0"): 0 error(s), 0 warning(s)'),
    });
  });

  it.each(breakages)('reject %s, naming the problem', async (_name, breakIt, expected) => {
    const dir = copyRepoInputs();
    scratch.push(dir);
    breakIt(dir);
    const result = await validate(path.join(dir, 'bundle'));
    expect(result).toEqual({ code: 1, output: expect.stringContaining(expected) });
  });
});
