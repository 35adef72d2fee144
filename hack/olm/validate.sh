#!/usr/bin/env bash
# Validates an OLM bundle with operator-framework's own validation library: builds hack/olm/validate
# (github.com/operator-framework/api at the version its go.mod pins) once into .cache/olm/bin, rebuilt
# only when its sources or the Go toolchain change, and runs it: the default bundle validators plus the
# OperatorHub, good-practices, object and deprecated-API suites. Exit 1 on any error.
# Usage: hack/olm/validate.sh [--build-only] [--fail-on-warnings] [--k8s-version X.Y] [bundle-dir]
#        (bundle-dir defaults to bundle/ at the repository root)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
src="$root/hack/olm/validate"
cache="${KVROUTE_OLM_CACHE:-$root/.cache/olm}"
bin="$cache/bin/olm-validate"
export GOFLAGS="-mod=mod -trimpath"
export CGO_ENABLED=0

say() { printf '[hack/olm/validate] %s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

build_only=false
args=()
dir=""
for arg in "$@"; do
  case "$arg" in
    --build-only) build_only=true ;;
    -*) args+=("$arg") ;;
    *) dir="$arg" ;;
  esac
done

command -v go >/dev/null 2>&1 || { say "go is not on PATH: the validator is a Go program"; exit 1; }
stamp="$( { go version; cat "$src/go.mod" "$src/go.sum" "$src/main.go"; } | sha256sum | cut -d' ' -f1)"
if [[ -x "$bin" && -f "$bin.stamp" && "$(cat "$bin.stamp")" == "$stamp" ]]; then
  say "validator cached ($bin)"
else
  mkdir -p "$cache/bin"
  log="$cache/build.log"
  say "building the validator (github.com/operator-framework/api $(sed -n 's/^require github.com\/operator-framework\/api \(v[^ ]*\)$/\1/p' "$src/go.mod")); a first build takes a few minutes on 2 cores"
  # go build -v names each package as it compiles: report every 50th as progress, keep all in the log.
  n=0
  set +e
  (cd "$src" && go build -v -o "$bin.tmp" . 2>&1) | tee "$log" | while IFS= read -r line; do
    n=$((n + 1))
    if (( n % 50 == 0 )); then say "compiled $n packages (now $line)"; fi
  done
  status=${PIPESTATUS[0]}
  set -e
  if [[ $status -ne 0 || ! -x "$bin.tmp" ]]; then
    say "build failed; last lines of $log:"
    tail -n 30 "$log" >&2
    exit 1
  fi
  mv "$bin.tmp" "$bin"
  echo "$stamp" > "$bin.stamp"
  say "built $bin"
fi

if $build_only; then exit 0; fi
exec "$bin" "${args[@]}" "${dir:-$root/bundle}"
