// The pod security every Deployment the operator renders carries: Kubernetes' `restricted` Pod Security
// level and OpenShift's restricted-v2 SCC (non-root without a fixed UID, no privilege escalation, all
// capabilities dropped, RuntimeDefault seccomp, read-only root filesystem with emptyDirs where writes go).

import type { V1Container, V1PodSecurityContext, V1PodSpec, V1SecurityContext } from '@kubernetes/client-node';

/**
 * A writable directory on an otherwise read-only root filesystem, backed by an emptyDir. `homeEnv`
 * makes it $HOME for every container that does not set HOME itself: an arbitrary UID (OpenShift) has
 * no passwd entry, so its HOME is "/", where caches could not be written.
 */
export interface ScratchDir {
  volume: string;
  mountPath: string;
  /** Memory-backed (tmpfs), counted against the container's memory limit. */
  medium?: 'Memory';
  sizeLimit?: string;
  homeEnv?: boolean;
}

/** /tmp, which Node, Python and most libraries expect to be writable. */
export const TMP_DIR: ScratchDir = { volume: 'tmp', mountPath: '/tmp' };

/**
 * vLLM's $HOME: the Hugging Face, vLLM (torch.compile), Triton and FlashInfer caches default to
 * directories under it, and the official image's HOME (/root) is neither writable nor owned by a
 * random UID.
 */
export const VLLM_HOME_DIR: ScratchDir = { volume: 'home', mountPath: '/home/vllm', homeEnv: true };

/**
 * Pod level: runAsNonRoot and RuntimeDefault seccomp. runAsUser, runAsGroup and fsGroup are left unset
 * on purpose: restricted-v2 assigns a UID from the namespace's range and rejects any fixed one, and
 * elsewhere the image's numeric USER applies.
 */
function restrictedPodSecurityContext(): V1PodSecurityContext {
  return { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } };
}

/** Container level: what `restricted` requires of every container, plus a read-only root filesystem. */
function restrictedSecurityContext(): V1SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    runAsNonRoot: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

function withScratch(container: V1Container, dirs: readonly ScratchDir[]): V1Container {
  const mounts = [...(container.volumeMounts ?? [])];
  for (const d of dirs) if (!mounts.some((m) => m.mountPath === d.mountPath)) mounts.push({ name: d.volume, mountPath: d.mountPath });
  const env = [...(container.env ?? [])];
  const home = dirs.find((d) => d.homeEnv);
  if (home && !env.some((e) => e.name === 'HOME')) env.push({ name: 'HOME', value: home.mountPath });
  return {
    ...container,
    ...(env.length > 0 ? { env } : {}),
    volumeMounts: mounts,
    securityContext: restrictedSecurityContext(),
  };
}

/**
 * Returns `spec` with the restricted security contexts on the pod and on every container (init
 * containers too), and each scratch directory as an emptyDir mounted in every container. A scratch
 * directory whose path a container already mounts is left to that mount.
 */
export function restrictPodSpec(spec: V1PodSpec, dirs: readonly ScratchDir[] = [TMP_DIR]): V1PodSpec {
  const volumes = [...(spec.volumes ?? [])];
  for (const d of dirs) {
    if (volumes.some((v) => v.name === d.volume)) continue;
    const emptyDir = { ...(d.medium ? { medium: d.medium } : {}), ...(d.sizeLimit ? { sizeLimit: d.sizeLimit } : {}) };
    volumes.push({ name: d.volume, emptyDir });
  }
  return {
    ...spec,
    securityContext: { ...spec.securityContext, ...restrictedPodSecurityContext() },
    ...(spec.initContainers ? { initContainers: spec.initContainers.map((c) => withScratch(c, dirs)) } : {}),
    containers: spec.containers.map((c) => withScratch(c, dirs)),
    volumes,
  };
}
