#!/usr/bin/env bash
# Builds llm-d's Go KV-block indexer (github.com/llm-d/llm-d-router, pkg/kvcache/kvblock) on this
# machine and runs its benchmarks next to ours, for bench/indexer.ts to compare against.
#
# It writes a throwaway Go module under .cache/llmd-bench/ that requires llm-d-router, then runs:
#   - upstream's own BenchmarkTokensToKVBlockKeys* (in the dependency package's _test.go files);
#   - our wrapper benchmarks over its public API (InMemoryIndex.Add, Lookup + LongestPrefixScorer),
#     on the same workload bench/indexer.ts builds (32 pods, ~1M entries, 8k-token prompt), and a
#     memory probe (bytes per entry after GC).
# Output: the raw `go test -bench` lines on stdout (bench/indexer.ts parses `ns/op` and the
# LLMD_BYTES_PER_ENTRY line). Exit status 3 means the module could not be obtained.
#
# Module source: the Go module proxy only (LLMD_ROUTER_VERSION picks a version, else @latest). When
# the proxy does not serve the module (it answered 403 for llm-d's modules on 2026-11-25), the script
# exits 3 and bench/indexer.ts reports llm-d as unavailable, or reads `go test -bench` output recorded
# elsewhere from LLMD_BENCH_OUTPUT. Nothing from llm-d is written into this repository.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/.cache/llmd-bench"
module=github.com/llm-d/llm-d-router
benchtime=${LLMD_BENCHTIME:-2s}
mkdir -p "$work"
cd "$work"
export GOFLAGS=-mod=mod
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}

want=${LLMD_ROUTER_VERSION:-latest}
if ! version=$(go list -m -f '{{.Version}}' "$module@$want" 2>"$work/list.err"); then
  echo "LLMD_UNAVAILABLE go module proxy: $(tr '\n' ' ' <"$work/list.err")" >&2
  exit 3
fi
echo "LLMD_SOURCE $module $version (module proxy)"

cat >go.mod <<MOD
module kvroute.local/llmdbench

go 1.24

require $module $version
MOD

# Our workload over llm-d's public API; keep it in step with bench/indexer.ts (buildWorkload).
cat >llmd_bench_test.go <<'GO'
package llmdbench

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/llm-d/llm-d-router/pkg/kvcache"
	"github.com/llm-d/llm-d-router/pkg/kvcache/kvblock"
	"k8s.io/apimachinery/pkg/util/sets"
)

const (
	pods        = 32
	blockSize   = 16
	sharedBlk   = 512 // the 8k-token prompt
	fillerBlk   = 128
	targetEntry = 1_000_000
)

// lcg is the same token generator bench/indexer.ts uses, so both sides index the same shapes.
type lcg struct{ s uint32 }

func (g *lcg) next() uint32 { g.s = g.s*1664525 + 1013904223; return g.s >> 15 }

func tokens(seed uint32, n int) []uint32 {
	g := lcg{seed}
	out := make([]uint32, n)
	for i := range out {
		out[i] = g.next()
	}
	return out
}

type workload struct {
	proc   kvblock.TokenProcessor
	shared []uint32
	keys   [][]kvblock.BlockHash // per filler prompt
	owner  []int
}

var (
	cachedOnce     sync.Once
	cachedWorkload *workload
)

// build returns the workload, built once per process: go test calls a benchmark several times.
func build(b testing.TB) *workload {
	cachedOnce.Do(func() { cachedWorkload = buildWorkload(b) })
	return cachedWorkload
}

func buildWorkload(b testing.TB) *workload {
	proc, err := kvblock.NewChunkedTokenDatabase(&kvblock.TokenProcessorConfig{BlockSizeTokens: blockSize, HashAlgorithm: kvblock.HashAlgorithmXXH64})
	if err != nil {
		b.Fatal(err)
	}
	w := &workload{proc: proc, shared: tokens(7, sharedBlk*blockSize)}
	sharedEntries := 0
	for p := 0; p < pods; p++ {
		sharedEntries += (p + 1) * (sharedBlk / pods)
	}
	perPod := (targetEntry - sharedEntries) / pods / fillerBlk
	for p := 0; p < pods; p++ {
		for i := 0; i < perPod; i++ {
			k, err := proc.TokensToKVBlockKeys(kvblock.EmptyBlockHash, tokens(uint32(1000+p*100000+i), fillerBlk*blockSize), "m", nil)
			if err != nil {
				b.Fatal(err)
			}
			w.keys = append(w.keys, k)
			w.owner = append(w.owner, p)
		}
	}
	return w
}

func (w *workload) fill(b testing.TB, idx kvblock.Index) int {
	ctx := context.Background()
	n := 0
	sharedKeys, _ := w.proc.TokensToKVBlockKeys(kvblock.EmptyBlockHash, w.shared, "m", nil)
	for p := 0; p < pods; p++ {
		held := (p + 1) * (sharedBlk / pods)
		entry := []kvblock.PodEntry{{PodIdentifier: fmt.Sprintf("pod-%d", p), DeviceTier: "gpu"}}
		if err := idx.Add(ctx, nil, sharedKeys[:held], entry); err != nil {
			b.Fatal(err)
		}
		n += held
	}
	for i, k := range w.keys {
		entry := []kvblock.PodEntry{{PodIdentifier: fmt.Sprintf("pod-%d", w.owner[i]), DeviceTier: "gpu"}}
		if err := idx.Add(ctx, nil, k, entry); err != nil {
			b.Fatal(err)
		}
		n += len(k)
	}
	return n
}

func newIndex(b testing.TB) kvblock.Index {
	idx, err := kvblock.NewInMemoryIndex(&kvblock.InMemoryIndexConfig{Size: 4_000_000, PodCacheSize: pods})
	if err != nil {
		b.Fatal(err)
	}
	return idx
}

// BenchmarkLlmdIndexAddPer128Blocks adds one 128-block prompt per op for a rotating pod.
func BenchmarkLlmdIndexAddPer128Blocks(b *testing.B) {
	w := build(b)
	idx := newIndex(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % len(w.keys)
		entry := []kvblock.PodEntry{{PodIdentifier: fmt.Sprintf("pod-%d", (w.owner[j]+i/len(w.keys))%pods), DeviceTier: "gpu"}}
		if err := idx.Add(ctx, nil, w.keys[j], entry); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLlmdScore8kPrompt: keys for the 8k-token prompt, Lookup over ~1M entries, longest-prefix score.
var (
	filledOnce  sync.Once
	filledIndex kvblock.Index
)

func BenchmarkLlmdScore8kPrompt(b *testing.B) {
	w := build(b)
	filledOnce.Do(func() {
		filledIndex = newIndex(b)
		w.fill(b, filledIndex)
	})
	idx := filledIndex
	scorer, err := kvcache.NewKVBlockScorer(kvcache.DefaultKVBlockScorerConfig())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	empty := sets.New[string]()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		keys, _ := w.proc.TokensToKVBlockKeys(kvblock.EmptyBlockHash, w.shared, "m", nil)
		hits, err := idx.Lookup(ctx, keys, empty)
		if err != nil {
			b.Fatal(err)
		}
		scores, _ := scorer.Score(ctx, keys, hits)
		if len(scores) != pods {
			b.Fatalf("expected %d scored pods, got %d", pods, len(scores))
		}
	}
}

// TestLlmdBytesPerEntry prints heap bytes per (block, pod) entry after GC.
func TestLlmdBytesPerEntry(t *testing.T) {
	w := build(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	idx := newIndex(t)
	n := w.fill(t, idx)
	runtime.GC()
	runtime.ReadMemStats(&after)
	fmt.Printf("LLMD_BYTES_PER_ENTRY %.1f entries=%d\n", float64(after.HeapAlloc-before.HeapAlloc)/float64(n), n)
	runtime.KeepAlive(idx)
	runtime.KeepAlive(w)
}
GO

go mod tidy >/dev/null 2>"$work/tidy.err" || { echo "LLMD_UNAVAILABLE go mod tidy: $(tail -5 "$work/tidy.err" | tr '\n' ' ')" >&2; exit 3; }
go test -run '^$' -bench 'BenchmarkTokensToKVBlockKeys' -benchtime "$benchtime" -benchmem "$module/pkg/kvcache/kvblock"
go test -run '^TestLlmdBytesPerEntry$' -bench 'BenchmarkLlmd' -benchtime "$benchtime" -benchmem -v . | grep -E '^(Benchmark|LLMD_|ok|FAIL|---)'
