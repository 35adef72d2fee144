#!/usr/bin/env bash
# Creates the Python environment used to generate golden vectors from vLLM's own code: the vllm
# wheel from PyPI installed without its GPU dependencies (we only import its pure-Python hashing and
# kv_events modules) plus what those modules import. Cached under .cache/vllm-venv; prints its python.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.cache/vllm-venv"
version="${VLLM_VERSION:-0.33.0}"
stamp="$venv/.kvroute-stamp-$version"
if [ ! -f "$stamp" ]; then
  echo "vllm-env: installing vllm $version (no deps) into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "vllm==$version" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check cbor2 msgspec pyzmq xxhash >&2
  touch "$stamp"
fi
echo "$venv/bin/python"
