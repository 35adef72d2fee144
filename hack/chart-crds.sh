#!/usr/bin/env bash
# Copies the generated CRDs (crds/*.yaml holding a CustomResourceDefinition) into the Helm chart's
# charts/kvroute/crds/, which Helm installs before the templates. With --check it changes nothing and
# fails, naming the files, when the chart's copies differ from crds/ (CI runs this).
#
#   bash hack/chart-crds.sh          # copy
#   bash hack/chart-crds.sh --check  # verify
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$repo_root/crds"
dst="$repo_root/charts/kvroute/crds"

check=false
case "${1:-}" in
  "") ;;
  --check) check=true ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

# Only CRD documents: crds/ may hold other files (a kustomization), which Helm would try to install.
wanted=()
for f in "$src"/*.yaml; do
  grep -q '^kind: CustomResourceDefinition$' "$f" && wanted+=("$(basename "$f")")
done
[[ ${#wanted[@]} -gt 0 ]] || { echo "no CustomResourceDefinition in $src" >&2; exit 1; }

if ! $check; then
  mkdir -p "$dst"
  for f in "$dst"/*.yaml; do
    [[ -e "$f" ]] || continue
    [[ " ${wanted[*]} " == *" $(basename "$f") "* ]] || rm -f "$f"
  done
  for f in "${wanted[@]}"; do cp "$src/$f" "$dst/$f"; done
  echo "copied ${wanted[*]} to charts/kvroute/crds/"
  exit 0
fi

stale=()
for f in "${wanted[@]}"; do
  cmp -s "$src/$f" "$dst/$f" || stale+=("charts/kvroute/crds/$f")
done
for f in "$dst"/*; do
  [[ -e "$f" ]] || continue
  [[ " ${wanted[*]} " == *" $(basename "$f") "* ]] || stale+=("charts/kvroute/crds/$(basename "$f") (not in crds/)")
done
if [[ ${#stale[@]} -gt 0 ]]; then
  printf 'chart CRDs differ from crds/: %s\nrun: bash hack/chart-crds.sh\n' "${stale[*]}" >&2
  exit 1
fi
echo "chart CRDs match crds/"
