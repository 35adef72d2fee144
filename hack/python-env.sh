#!/usr/bin/env bash
# Creates the Python environment used only by tests and golden-vector generators: a real vLLM wheel
# (installed without its GPU dependencies; we import only its pure-Python hashing and kv_events
# modules), cbor2, msgspec and pyzmq. Cached under .cache/venv; prints the venv's python path.
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
