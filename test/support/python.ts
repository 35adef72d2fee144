// The Python interpreters of the Python test peers: hack/python-env.sh (pyzmq, msgspec, cbor2: the
// publisher and subscriber peers) and hack/vllm-env.sh (the same plus the vllm wheel, for peers that
// run vLLM's own code). Each script creates its venv once and prints the interpreter's path.

import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from './repo-root.ts';

const cache = new Map<string, string>();

function envPython(script: string): string {
  let python = cache.get(script);
  if (!python) {
    python = execFileSync('bash', [path.join(repoRoot, script)], { encoding: 'utf8' }).trim();
    cache.set(script, python);
  }
  return python;
}

/** The interpreter of hack/python-env.sh (pyzmq + msgspec), created on first use. */
export function peerPython(): string {
  return envPython('hack/python-env.sh');
}

/** The interpreter of hack/vllm-env.sh (the vllm wheel without its GPU dependencies), created on first use. */
export function vllmPython(): string {
  return envPython('hack/vllm-env.sh');
}
