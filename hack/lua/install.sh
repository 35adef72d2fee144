#!/usr/bin/env bash
# Installs Debian's Lua interpreters that the Argo CD health-check tests (e2e/argocd-health.test.ts) run
# argocd/resource_customizations/**/health.lua with: lua5.1, the dialect of gopher-lua that Argo CD
# embeds, and lua5.4. A no-op when both are already on PATH.
set -euo pipefail

say() { printf '[hack/lua/install] %s\n' "$*" >&2; }

missing=()
for lua in lua5.1 lua5.4; do
  command -v "$lua" >/dev/null 2>&1 || missing+=("$lua")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  say "present: $(lua5.1 -v 2>&1 | cut -d' ' -f1-2), $(lua5.4 -v 2>&1 | cut -d' ' -f1-2)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  say "missing ${missing[*]} and apt-get is not available: install them so they are on PATH"
  exit 1
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
say "installing ${missing[*]} with apt-get"
# A fresh machine may have no package lists: install first, and refresh the lists only when that fails.
"${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
  "${sudo[@]}" apt-get update >/dev/null
  "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
}
say "installed: $(lua5.1 -v 2>&1 | cut -d' ' -f1-2), $(lua5.4 -v 2>&1 | cut -d' ' -f1-2)"
