import { describe, expect, it } from '@jest/globals';
import type { V1PodSpec } from '@kubernetes/client-node';
import { testPool } from '../testing.ts';
import { buildModelServerDeployment } from './model-server.ts';
import { buildRouterDeployment } from './router.ts';
import { restrictPodSpec, TMP_DIR, VLLM_HOME_DIR } from './security.ts';

const served = { model: { name: 'meta-llama/Llama-3.1-8B-Instruct' }, modelServer: { image: 'vllm/vllm-openai:v0.33.0' } };

/** Every container of `spec` as the restricted level and restricted-v2 see it; [] when nothing is wrong. */
function restrictedViolations(spec: V1PodSpec): string[] {
  const out: string[] = [];
  if (spec.securityContext?.runAsNonRoot !== true) out.push('pod runAsNonRoot');
  if (spec.securityContext?.seccompProfile?.type !== 'RuntimeDefault') out.push('pod seccomp');
  for (const field of ['runAsUser', 'runAsGroup', 'fsGroup'] as const)
    if (spec.securityContext?.[field] !== undefined) out.push(`pod ${field} fixed`);
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    const sc = c.securityContext ?? {};
    if (sc.allowPrivilegeEscalation !== false) out.push(`${c.name} allowPrivilegeEscalation`);
    if (sc.readOnlyRootFilesystem !== true) out.push(`${c.name} readOnlyRootFilesystem`);
    if (JSON.stringify(sc.capabilities?.drop) !== '["ALL"]' || sc.capabilities?.add) out.push(`${c.name} capabilities`);
    if (sc.runAsUser !== undefined || sc.runAsGroup !== undefined) out.push(`${c.name} fixed uid/gid`);
    if (sc.privileged) out.push(`${c.name} privileged`);
  }
  return out;
}

const mountsOf = (spec: V1PodSpec, container: string) =>
  spec.containers.find((c) => c.name === container)!.volumeMounts!.map((m) => `${m.name}:${m.mountPath}`);

describe('restrictPodSpec', () => {
  it('sets the restricted pod and container security contexts on every container, init containers included, and no UID', () => {
    const spec = restrictPodSpec({ initContainers: [{ name: 'init' }], containers: [{ name: 'a' }, { name: 'b' }] });
    expect(restrictedViolations(spec)).toEqual([]);
    expect(spec.initContainers![0]!.securityContext).toEqual(spec.containers[0]!.securityContext);
  });

  it('does not let a pod security context the builder passed turn the restricted fields off', () => {
    const spec = restrictPodSpec({ securityContext: { runAsNonRoot: false, supplementalGroups: [5] }, containers: [{ name: 'a' }] });
    expect(spec.securityContext).toEqual({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' }, supplementalGroups: [5] });
  });

  it('adds each scratch directory as one emptyDir mounted in every container, keeping existing volumes and mounts', () => {
    const spec = restrictPodSpec(
      {
        containers: [{ name: 'a', volumeMounts: [{ name: 'config', mountPath: '/etc/x' }] }, { name: 'b' }],
        volumes: [{ name: 'config', configMap: { name: 'x' } }],
      },
      [TMP_DIR, { volume: 'shm', mountPath: '/dev/shm', medium: 'Memory', sizeLimit: '1Gi' }],
    );
    expect(spec.volumes).toEqual([
      { name: 'config', configMap: { name: 'x' } },
      { name: 'tmp', emptyDir: {} },
      { name: 'shm', emptyDir: { medium: 'Memory', sizeLimit: '1Gi' } },
    ]);
    expect(mountsOf(spec, 'a')).toEqual(['config:/etc/x', 'tmp:/tmp', 'shm:/dev/shm']);
    expect(mountsOf(spec, 'b')).toEqual(['tmp:/tmp', 'shm:/dev/shm']);
  });

  it('leaves a path a container already mounts, and a volume name already defined, to the builder', () => {
    const spec = restrictPodSpec({
      containers: [{ name: 'a', volumeMounts: [{ name: 'scratch', mountPath: '/tmp' }] }],
      volumes: [{ name: 'tmp', emptyDir: { medium: 'Memory' } }],
    });
    expect(mountsOf(spec, 'a')).toEqual(['scratch:/tmp']);
    expect(spec.volumes).toEqual([{ name: 'tmp', emptyDir: { medium: 'Memory' } }]);
  });

  it('points HOME at a home scratch directory unless the container sets HOME itself', () => {
    const spec = restrictPodSpec(
      {
        containers: [
          { name: 'a', env: [{ name: 'X', value: '1' }] },
          { name: 'b', env: [{ name: 'HOME', value: '/data' }] },
        ],
      },
      [VLLM_HOME_DIR],
    );
    expect(spec.containers[0]!.env).toEqual([
      { name: 'X', value: '1' },
      { name: 'HOME', value: '/home/vllm' },
    ]);
    expect(spec.containers[1]!.env).toEqual([{ name: 'HOME', value: '/data' }]);
  });
});

describe('operator-rendered pods', () => {
  it('runs the router and its indexer sidecar restricted, each with a writable /tmp beside the read-only config', () => {
    const spec = buildRouterDeployment(testPool(served), { defaultImage: 'kvroute:test' }).spec!.template.spec!;
    expect(restrictedViolations(spec)).toEqual([]);
    expect(spec.containers.map((c) => c.name)).toEqual(['router', 'indexer']);
    for (const c of ['router', 'indexer']) expect(mountsOf(spec, c)).toEqual(['config:/etc/kvroute', 'tmp:/tmp']);
    expect(spec.volumes!.map((v) => v.name)).toEqual(['config', 'tmp']);
  });

  it('runs vLLM restricted with /tmp and a writable HOME, and keeps a HOME the pool sets', () => {
    const spec = buildModelServerDeployment(testPool(served))!.spec!.template.spec!;
    expect(restrictedViolations(spec)).toEqual([]);
    expect(mountsOf(spec, 'vllm')).toEqual(['tmp:/tmp', 'home:/home/vllm', 'dshm:/dev/shm', 'model-cache:/model-cache']);
    expect(spec.containers[0]!.env!.filter((e) => e.name === 'HOME')).toEqual([{ name: 'HOME', value: '/home/vllm' }]);

    const own = buildModelServerDeployment(
      testPool({ ...served, modelServer: { ...served.modelServer, env: [{ name: 'HOME', value: '/models' }] } }),
    )!;
    expect(own.spec!.template.spec!.containers[0]!.env!.filter((e) => e.name === 'HOME')).toEqual([{ name: 'HOME', value: '/models' }]);
  });
});
