import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { kvrouteBin, nodeBinary } from '../../test/support/node.ts';
import { repoRoot } from '../../test/support/repo-root.ts';
import { readDocuments } from './render.ts';

function kvrouteRender(args: string[], stdin?: string) {
  const r = spawnSync(nodeBinary(), [kvrouteBin, 'render', ...args], {
    cwd: repoRoot,
    input: stdin ?? '',
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('kvroute render', () => {
  it('prints the objects for the managed sample pool and its model as multi-document YAML, each with its source', () => {
    const { status, stdout, stderr } = kvrouteRender([
      '-f',
      'config/samples/inferencepool_llama.yaml',
      '-f',
      'config/samples/inferencemodel_chat.yaml',
      '--image',
      'kvroute:e2e',
    ]);
    expect({ status, stderr }).toEqual({ status: 0, stderr: '' });
    const objects = YAML.parseAllDocuments(stdout).map((d) => d.toJS() as { kind: string; metadata: { name: string }; spec?: any });
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(
      expect.arrayContaining(['Deployment/llama-router', 'Deployment/llama-vllm', 'EnvoyFilter/llama-ext-proc']),
    );
    const vllm = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'llama-vllm')!;
    expect(vllm.spec.template.spec.containers[0].args).toEqual(expect.arrayContaining(['--lora-modules', 'support-lora=support-lora']));
    const router = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'llama-router')!;
    expect(router.spec.template.spec.containers[0].image).toBe('kvroute:e2e');
    expect(stdout.match(/^# Source: config\/samples\/inferencepool_llama\.yaml: document 1 \(InferencePool llama\)$/gm)).toHaveLength(
      objects.length,
    );
  });

  it('fails naming the file, the document and the field of an invalid pool, printing nothing on stdout', () => {
    const bad =
      'apiVersion: inference.kvroute.io/v1alpha1\nkind: InferencePool\nmetadata: {name: ok}\nspec: {model: {name: m}, modelServer: {image: i}}\n---\napiVersion: inference.kvroute.io/v1alpha1\nkind: InferencePool\nmetadata: {name: bad}\nspec: {model: {name: m}, selector: {matchLabels: {app: x}}, targetPorts: [{number: 80}, {number: 80}]}\n';
    const { status, stdout, stderr } = kvrouteRender(['-f', '-'], bad);
    expect(status).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toBe(
      'kvroute: invalid input:\n  (stdin): document 2 (InferencePool bad): spec.targetPorts: expected unique port numbers\n',
    );
  });

  it('renders the pool NetworkPolicies with the peers given, none with --no-network-policies, and names a bad peer', () => {
    // The GIE path: the referenced inference.networking.k8s.io pool comes on stdin.
    const giePool =
      'apiVersion: inference.networking.k8s.io/v1\nkind: InferencePool\nmetadata: {name: gpt-oss, namespace: default}\nspec: {selector: {matchLabels: {app: gpt-oss-vllm}}, targetPorts: [{number: 8000}], endpointPickerRef: {name: gpt-oss-router, port: {number: 9002}}}\n';
    const pool = ['-f', 'config/samples/inferencepool_gie.yaml', '-f', '-'];
    const policies = (stdout: string) =>
      YAML.parseAllDocuments(stdout)
        .map((d) => d.toJS() as { kind: string; metadata: { name: string }; spec: any })
        .filter((o) => o.kind === 'NetworkPolicy');
    const peers = [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'istio-system' } } }];
    const withPeers = kvrouteRender([...pool, '--gateway-peers', JSON.stringify(peers)], giePool);
    expect(withPeers.status).toBe(0);
    const rendered = policies(withPeers.stdout);
    expect(rendered.map((p) => p.metadata.name).sort()).toEqual(['gpt-oss-model-servers', 'gpt-oss-router']);
    expect(JSON.stringify(rendered)).toContain('istio-system');
    const none = kvrouteRender([...pool, '--no-network-policies'], giePool);
    expect(none.status).toBe(0);
    expect(policies(none.stdout)).toEqual([]);
    const bad = kvrouteRender([...pool, '--gateway-peers', '[{"podSelector": 3}]'], giePool);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain('--gateway-peers: [0.podSelector]');
  });

  it('refuses an optional API it does not know in --api-versions and a missing file', () => {
    const api = kvrouteRender(['-f', 'config/samples/inferencepool_llama.yaml', '--api-versions', 'example.com/v1/Thing']);
    expect(api.status).not.toBe(0);
    expect(api.stderr).toContain('"example.com/v1/Thing" is not an optional API the operator uses');
    const missing = kvrouteRender(['-f', 'nope.yaml']);
    expect(missing.stderr).toContain('-f nope.yaml: no such file or directory');
  });
});

describe('readDocuments', () => {
  it('reads every YAML file of a directory in name order, numbering documents per file, and names a file with broken YAML', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-render-'));
    try {
      fs.writeFileSync(path.join(dir, 'b.yaml'), 'kind: B\n---\nkind: C\n');
      fs.writeFileSync(path.join(dir, 'a.yml'), 'kind: A\n');
      fs.writeFileSync(path.join(dir, 'notes.txt'), 'ignored');
      expect(readDocuments([dir]).map((d) => [path.basename(d.file), d.index, (d.doc as { kind: string }).kind])).toEqual([
        ['a.yml', 0, 'A'],
        ['b.yaml', 0, 'B'],
        ['b.yaml', 1, 'C'],
      ]);
      fs.writeFileSync(path.join(dir, 'c.yaml'), 'kind: [unclosed\n');
      expect(() => readDocuments([dir])).toThrow(/c\.yaml: document 1: not valid YAML/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
