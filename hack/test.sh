#!/usr/bin/env bash
# The full test run (`npm run test:ci`): installs the real test peers this repo uses (Python publisher
# environment, kube-apiserver + etcd), typechecks, checks generated files are current, runs every jest
# project, and ends with one plain summary line: "jest: N passed, N failed, N skipped".
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/node_modules/.bin:$PATH"
step() { printf '\n==> %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "python test peers"
bash hack/python-env.sh >/dev/null

if [ -x hack/kube/install.sh ] || [ -f hack/kube/install.sh ]; then
  step "kube-apiserver + etcd (cached under .cache/kube)"
  bash hack/kube/install.sh
  export KVROUTE_REQUIRE_KUBE=1
fi

step "envoy (cached under .cache/envoy)"
bash hack/envoy/install.sh >/dev/null
export KVROUTE_REQUIRE_ENVOY=1

step "typecheck"
tsc --noEmit -p tsconfig.json

if npm run | grep -q '^  check:generated'; then
  step "generated files are current"
  npm run --silent check:generated
fi

step "vendored ext_proc protos are current"
bash hack/protos/sync.sh --check

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
