#!/usr/bin/env bash
# Vendors Envoy's ext_proc v3 protos into src/envoy/proto/ for the router, which loads them at
# run time with @grpc/proto-loader. Why this source: npm's @grpc/grpc-js-xds ships protos too old for
# FULL_DUPLEX_STREAMED / StreamedBodyResponse, and only package registries are reachable, so the .proto
# files come from the Maven artifact io.envoyproxy.controlplane:api (java-control-plane), which ships
# them verbatim. The jar is fetched with mvn (pinned version, sha256 checked), cached under
# .cache/protos, and only the import closure of envoy/service/ext_proc/v3/external_processor.proto is
# copied (computed by following `import` lines). google/protobuf/* is left out: protobufjs and
# proto-loader bring the well-known types themselves.
#
#   bash hack/protos/sync.sh           regenerate src/envoy/proto/
#   bash hack/protos/sync.sh --check   exit 1 if src/envoy/proto/ differs from what it would write
set -euo pipefail

GROUP=io.envoyproxy.controlplane
ARTIFACT=api
VERSION=1.0.49
JAR_SHA256=cbac9ac918071e132c552100f6c26978346116205d8f93a2efe5050049c1cc6e
ROOT_PROTO=envoy/service/ext_proc/v3/external_processor.proto

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="$repo_root/src/envoy/proto"
cache="$repo_root/.cache/protos"
jar="$cache/$ARTIFACT-$VERSION.jar"

say() { printf '[hack/protos/sync] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

check=false
case "${1:-}" in
  "") ;;
  --check) check=true ;;
  *) die "usage: $0 [--check]" ;;
esac

jar_ok() { [[ -f "$jar" ]] && [[ "$(sha256sum "$jar" | cut -d' ' -f1)" == "$JAR_SHA256" ]]; }

fetch_jar() {
  if jar_ok; then return; fi
  command -v mvn >/dev/null || die "mvn not found (needed once to fetch $GROUP:$ARTIFACT:$VERSION)"
  mkdir -p "$cache"
  rm -f "$jar"
  say "fetching $GROUP:$ARTIFACT:$VERSION with mvn"
  # -C: fail on checksum mismatch instead of warning. mvn's output goes to stderr, without the bare
  # colour resets Debian's mvn prints even in batch mode (pipefail keeps mvn's exit status).
  mvn -q -B -C dependency:copy -Dartifact="$GROUP:$ARTIFACT:$VERSION:jar" -DoutputDirectory="$cache" 2>&1 |
    sed 's/\x1b\[0m//g' >&2
  jar_ok || die "$jar missing or its sha256 is not $JAR_SHA256"
}

# Writes the vendored tree into $2 (an empty directory), unzipping into $1.
generate() {
  local src="$1" dest="$2"
  unzip -q "$jar" '*.proto' -d "$src"

  # Breadth-first over import lines, so the closure follows the pinned protos, not a hand-kept list.
  local -A seen=()
  local queue=("$ROOT_PROTO") files=() file dep
  while [[ ${#queue[@]} -gt 0 ]]; do
    file="${queue[0]}"
    queue=("${queue[@]:1}")
    [[ -n "${seen[$file]:-}" ]] && continue
    seen[$file]=1
    [[ -f "$src/$file" ]] || die "$file is imported but not in $ARTIFACT-$VERSION.jar"
    files+=("$file")
    while read -r dep; do
      [[ "$dep" == google/protobuf/* ]] && continue
      queue+=("$dep")
    done < <(sed -n 's/^[[:space:]]*import[[:space:]]\{1,\}\(public[[:space:]]\{1,\}\|weak[[:space:]]\{1,\}\)\{0,1\}"\([^"]*\)";.*$/\2/p' "$src/$file")
  done

  local sorted
  mapfile -t sorted < <(printf '%s\n' "${files[@]}" | LC_ALL=C sort)
  for file in "${sorted[@]}"; do
    mkdir -p "$dest/$(dirname "$file")"
    cp "$src/$file" "$dest/$file"
  done

  {
    echo "# Generated: do not edit"
    echo
    echo "This folder is written by \`hack/protos/sync.sh\`; do not edit it by hand. Change the pinned version in the"
    echo "script and rerun it instead (\`bash hack/protos/sync.sh --check\` fails in CI when this folder is stale)."
    echo
    echo "- Source: Maven artifact \`$GROUP:$ARTIFACT:$VERSION\` (envoyproxy/java-control-plane, Apache-2.0),"
    echo "  jar sha256 \`$JAR_SHA256\`"
    echo "- Contents: the import closure of \`$ROOT_PROTO\`, files copied verbatim, without"
    echo "  \`google/protobuf/*\` (protobufjs provides the well-known types)"
    echo
    echo "Files:"
    echo
    for file in "${sorted[@]}"; do echo "- \`$file\`"; done
  } >"$dest/README.md"
}

fetch_jar
# Work inside .cache so the final mv is a rename on the same file system.
work="$(mktemp -d "$cache/work.XXXXXX")"
trap 'rm -rf "$work"' EXIT
staging="$work/proto"
mkdir "$staging"
generate "$work/jar" "$staging"

if $check; then
  if ! diff -r "$out" "$staging" >/dev/null 2>&1; then
    diff -r "$out" "$staging" >&2 || true
    die "src/envoy/proto/ is not what hack/protos/sync.sh generates from $GROUP:$ARTIFACT:$VERSION; run: bash hack/protos/sync.sh"
  fi
  say "src/envoy/proto/ is current ($GROUP:$ARTIFACT:$VERSION)"
  exit 0
fi

rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$staging" "$out"
chmod 755 "$out"
say "wrote $(find "$out" -name '*.proto' | wc -l) protos from $GROUP:$ARTIFACT:$VERSION to ${out#"$repo_root"/}"
