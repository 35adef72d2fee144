#!/usr/bin/env bash
# Builds the test peers for the operator's integration tests from Go modules and caches them under
# .cache/kube/bin: kube-apiserver, kube-controller-manager (for the garbage collector) and kubectl
# (for the manifest tests, at the apiserver's version) from a wrapper module that requires
# k8s.io/kubernetes, and etcd from a wrapper module around etcdmain.
# Reruns are instant when the binaries for the pinned versions already exist.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${KUBE_CACHE_DIR:-$repo_root/.cache/kube}"
bin="$cache/bin"
mkdir -p "$bin"
export GOFLAGS="-trimpath -mod=mod"
export CGO_ENABLED=0

say() { printf '[hack/kube/install] %s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

stamp_ok() { [[ -x "$bin/$1" && -f "$bin/$1.version" && "$(cat "$bin/$1.version")" == "$2" ]]; }

build_kube() {
  local wanted=()
  stamp_ok kube-apiserver "$KUBE_VERSION" || wanted+=(k8s.io/kubernetes/cmd/kube-apiserver)
  stamp_ok kube-controller-manager "$KUBE_VERSION" || wanted+=(k8s.io/kubernetes/cmd/kube-controller-manager)
  stamp_ok kubectl "$KUBE_VERSION" || wanted+=(k8s.io/kubernetes/cmd/kubectl)
  if [[ ${#wanted[@]} -eq 0 ]]; then say "kube binaries $KUBE_VERSION cached"; return; fi

  local mod="$cache/kubernetes-$KUBE_VERSION"
  mkdir -p "$mod"
  say "resolving k8s.io/kubernetes@$KUBE_VERSION"
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -f "$gomod" ]] || { say "could not locate go.mod of k8s.io/kubernetes@$KUBE_VERSION"; exit 1; }
  # Staging modules are required at v0.0.0 and replaced by ./staging paths; their published
  # versions are v0.<minor>.<patch> for Kubernetes v1.<minor>.<patch>.
  local staging_version="v0.${KUBE_VERSION#v1.}"
  {
    echo "module kvroute.local/kube-peers"
    echo
    echo "go 1.24"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "replace ("
    sed -n 's/^[[:space:]]*\(k8s\.io\/[A-Za-z0-9._-]*\) => \.\/staging\/.*$/\1/p' "$gomod" | sort -u |
      while read -r m; do echo "	$m => $m $staging_version"; done
    echo ")"
  } >"$mod/go.mod"
  cat >"$mod/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  say "go mod tidy (downloads modules; first run takes minutes)"
  (cd "$mod" && go mod tidy >/dev/null)
  local start=$SECONDS
  say "building ${wanted[*]} (nice; first build takes tens of minutes on 2 cores)"
  (cd "$mod" && nice -n 10 go build -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION" -o "$bin/" "${wanted[@]}")
  for p in "${wanted[@]}"; do echo "$KUBE_VERSION" >"$bin/$(basename "$p").version"; done
  say "built kube binaries in $((SECONDS - start)) s"
}

build_etcd() {
  if stamp_ok etcd "$ETCD_VERSION"; then say "etcd $ETCD_VERSION cached"; return; fi
  local mod="$cache/etcd-$ETCD_VERSION"
  mkdir -p "$mod"
  cat >"$mod/go.mod" <<GOMOD
module kvroute.local/etcd-peer

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
GOMOD
  cat >"$mod/main.go" <<'GO'
// Command etcd runs etcd's own entry point; it exists so the tests can build etcd from Go modules.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  say "go mod tidy for etcd $ETCD_VERSION"
  (cd "$mod" && go mod tidy >/dev/null)
  local start=$SECONDS
  say "building etcd $ETCD_VERSION"
  (cd "$mod" && nice -n 10 go build -ldflags "-s -w" -o "$bin/etcd" .)
  echo "$ETCD_VERSION" >"$bin/etcd.version"
  say "built etcd in $((SECONDS - start)) s"
}

build_etcd
build_kube
say "binaries in $bin: $(ls "$bin" | grep -v '\.version$' | tr '\n' ' ')"
