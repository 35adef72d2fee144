#!/usr/bin/env bash
# Creates the small Python environment tests use as a peer (pyzmq publishers and subscribers, cbor2,
# msgspec, xxhash); it holds no vLLM: hack/vllm-env.sh builds the one with vLLM's own code for the
# golden vectors. Cached under .cache/venv; prints the venv's python path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.cache/venv"
stamp="$venv/.kvroute-stamp-v1"
if [ ! -f "$stamp" ]; then
  echo "python-env: creating $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check cbor2 msgspec pyzmq xxhash >&2
  touch "$stamp"
fi
echo "$venv/bin/python"
