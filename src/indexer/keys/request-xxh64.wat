;; XXH64 for request keys, in WebAssembly for native 64-bit multiplies (a JavaScript port with 32-bit
;; math measured ~5x slower in bench/indexer.ts). Source of src/indexer/keys/request-xxh64.wasm.ts; rebuild with
;; `bash hack/gen-request-wasm.sh` (wabt's wat2wasm). Seeds and keys cross the boundary as (lo, hi)
;; i32 halves so JavaScript never needs BigInt.
(module
  (memory (export "memory") 1)
  (global $P1 i64 (i64.const 0x9E3779B185EBCA87))
  (global $P2 i64 (i64.const 0xC2B2AE3D27D4EB4F))
  (global $P3 i64 (i64.const 0x165667B19E3779F9))
  (global $P4 i64 (i64.const 0x85EBCA77C2B2AE63))
  (global $P5 i64 (i64.const 0x27D4EB2F165667C5))

  (func $round (param $acc i64) (param $in i64) (result i64)
    (i64.mul
      (i64.rotl (i64.add (local.get $acc) (i64.mul (local.get $in) (global.get $P2))) (i64.const 31))
      (global.get $P1)))

  (func $merge (param $acc i64) (param $v i64) (result i64)
    (i64.add
      (i64.mul (i64.xor (local.get $acc) (call $round (i64.const 0) (local.get $v))) (global.get $P1))
      (global.get $P4)))

  (func $seed (param $lo i32) (param $hi i32) (result i64)
    (i64.or (i64.extend_i32_u (local.get $lo)) (i64.shl (i64.extend_i32_u (local.get $hi)) (i64.const 32))))

  ;; XXH64 of memory[p, p+len) with a 64-bit seed.
  (func $xxh64 (param $p i32) (param $len i32) (param $seed i64) (result i64)
    (local $end i32) (local $limit i32) (local $h i64)
    (local $v1 i64) (local $v2 i64) (local $v3 i64) (local $v4 i64)
    (local.set $end (i32.add (local.get $p) (local.get $len)))
    (if (i32.ge_u (local.get $len) (i32.const 32))
      (then
        (local.set $limit (i32.sub (local.get $end) (i32.const 32)))
        (local.set $v1 (i64.add (i64.add (local.get $seed) (global.get $P1)) (global.get $P2)))
        (local.set $v2 (i64.add (local.get $seed) (global.get $P2)))
        (local.set $v3 (local.get $seed))
        (local.set $v4 (i64.sub (local.get $seed) (global.get $P1)))
        (loop $stripes
          (local.set $v1 (call $round (local.get $v1) (i64.load (local.get $p))))
          (local.set $v2 (call $round (local.get $v2) (i64.load offset=8 (local.get $p))))
          (local.set $v3 (call $round (local.get $v3) (i64.load offset=16 (local.get $p))))
          (local.set $v4 (call $round (local.get $v4) (i64.load offset=24 (local.get $p))))
          (local.set $p (i32.add (local.get $p) (i32.const 32)))
          (br_if $stripes (i32.le_u (local.get $p) (local.get $limit))))
        (local.set $h
          (i64.add
            (i64.add (i64.rotl (local.get $v1) (i64.const 1)) (i64.rotl (local.get $v2) (i64.const 7)))
            (i64.add (i64.rotl (local.get $v3) (i64.const 12)) (i64.rotl (local.get $v4) (i64.const 18)))))
        (local.set $h (call $merge (local.get $h) (local.get $v1)))
        (local.set $h (call $merge (local.get $h) (local.get $v2)))
        (local.set $h (call $merge (local.get $h) (local.get $v3)))
        (local.set $h (call $merge (local.get $h) (local.get $v4))))
      (else
        (local.set $h (i64.add (local.get $seed) (global.get $P5)))))
    (local.set $h (i64.add (local.get $h) (i64.extend_i32_u (local.get $len))))
    (block $done8
      (loop $lanes8
        (br_if $done8 (i32.gt_u (i32.add (local.get $p) (i32.const 8)) (local.get $end)))
        (local.set $h (i64.xor (local.get $h) (call $round (i64.const 0) (i64.load (local.get $p)))))
        (local.set $h (i64.add (i64.mul (i64.rotl (local.get $h) (i64.const 27)) (global.get $P1)) (global.get $P4)))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))
        (br $lanes8)))
    (if (i32.le_u (i32.add (local.get $p) (i32.const 4)) (local.get $end))
      (then
        (local.set $h (i64.xor (local.get $h) (i64.mul (i64.load32_u (local.get $p)) (global.get $P1))))
        (local.set $h (i64.add (i64.mul (i64.rotl (local.get $h) (i64.const 23)) (global.get $P2)) (global.get $P3)))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))))
    (block $done1
      (loop $bytes
        (br_if $done1 (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $h (i64.xor (local.get $h) (i64.mul (i64.load8_u (local.get $p)) (global.get $P5))))
        (local.set $h (i64.mul (i64.rotl (local.get $h) (i64.const 11)) (global.get $P1)))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $bytes)))
    (local.set $h (i64.mul (i64.xor (local.get $h) (i64.shr_u (local.get $h) (i64.const 33))) (global.get $P2)))
    (local.set $h (i64.mul (i64.xor (local.get $h) (i64.shr_u (local.get $h) (i64.const 29))) (global.get $P3)))
    (i64.xor (local.get $h) (i64.shr_u (local.get $h) (i64.const 32))))

  ;; One hash: XXH64(memory[p, p+len), seed) stored as 8 little-endian bytes at out.
  (func (export "hash") (param $p i32) (param $len i32) (param $seedLo i32) (param $seedHi i32) (param $out i32)
    (i64.store (local.get $out)
      (call $xxh64 (local.get $p) (local.get $len) (call $seed (local.get $seedLo) (local.get $seedHi)))))

  ;; A chain: for each of `blocks` consecutive runs of blockBytes at p, key = XXH64(run, previous key),
  ;; starting from the given seed; keys stored as consecutive little-endian u64 at out.
  (func (export "chain") (param $p i32) (param $blocks i32) (param $blockBytes i32)
        (param $seedLo i32) (param $seedHi i32) (param $out i32)
    (local $key i64) (local $b i32)
    (local.set $key (call $seed (local.get $seedLo) (local.get $seedHi)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $b) (local.get $blocks)))
        (local.set $key (call $xxh64 (local.get $p) (local.get $blockBytes) (local.get $key)))
        (i64.store (local.get $out) (local.get $key))
        (local.set $p (i32.add (local.get $p) (local.get $blockBytes)))
        (local.set $out (i32.add (local.get $out) (i32.const 8)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (br $next))))
)
