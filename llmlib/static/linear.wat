;; The one kernel of llmlib's browser GPT (llmlib/static/gpt.js) in WebAssembly with 128-bit SIMD:
;; y (nOut) = W (nOut, nIn) x (nIn), W's rows `stride` bytes apart, for nOut a multiple of 4.
;; gpt.js calls it for every linear layer (stride = 4 nIn), for attention's scores (W = the keys
;; of one head, rows C floats apart) and for its weighted sum of the values (W = the values
;; transposed). Addresses are byte offsets into the memory gpt.js passes in, where the model's
;; weights, its KV cache and its activations live. It does what gpt.js's `linear` does in plain
;; JavaScript, about ten times faster: four floats per instruction, four rows at a time (each x
;; is loaded once for four rows). Built into linear_wasm.js by tools/build_wasm.js (wabt).
(module
  (import "env" "memory" (memory 1))
  (func $dot4 (export "matvec")
        (param $y i32) (param $W i32) (param $x i32) (param $nOut i32) (param $nIn i32)
        (param $stride i32)
    (local $r0 i32) (local $r1 i32) (local $r2 i32) (local $r3 i32) (local $o i32)
    (local $i i32) (local $vecBytes i32) (local $inBytes i32) (local $xv v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $s0 f32) (local $s1 f32) (local $s2 f32) (local $s3 f32) (local $xs f32)
    (local.set $inBytes (i32.shl (local.get $nIn) (i32.const 2)))
    (local.set $vecBytes (i32.and (local.get $inBytes) (i32.const -16)))  ;; whole f32x4 chunks
    (local.set $r0 (local.get $W))
    (block $rowsDone
      (loop $rows                                       ;; four rows: r0, r1, r2, r3
        (br_if $rowsDone (i32.ge_u (local.get $o) (local.get $nOut)))
        (local.set $r1 (i32.add (local.get $r0) (local.get $stride)))
        (local.set $r2 (i32.add (local.get $r1) (local.get $stride)))
        (local.set $r3 (i32.add (local.get $r2) (local.get $stride)))
        (local.set $a0 (v128.const f32x4 0 0 0 0))
        (local.set $a1 (v128.const f32x4 0 0 0 0))
        (local.set $a2 (v128.const f32x4 0 0 0 0))
        (local.set $a3 (v128.const f32x4 0 0 0 0))
        (local.set $i (i32.const 0))
        (block $vecDone
          (br_if $vecDone (i32.eqz (local.get $vecBytes)))
          (loop $cols                                   ;; a += W[r, i:i+4] * x[i:i+4]
            (local.set $xv (v128.load (i32.add (local.get $x) (local.get $i))))
            (local.set $a0 (f32x4.add (local.get $a0)
              (f32x4.mul (v128.load (i32.add (local.get $r0) (local.get $i))) (local.get $xv))))
            (local.set $a1 (f32x4.add (local.get $a1)
              (f32x4.mul (v128.load (i32.add (local.get $r1) (local.get $i))) (local.get $xv))))
            (local.set $a2 (f32x4.add (local.get $a2)
              (f32x4.mul (v128.load (i32.add (local.get $r2) (local.get $i))) (local.get $xv))))
            (local.set $a3 (f32x4.add (local.get $a3)
              (f32x4.mul (v128.load (i32.add (local.get $r3) (local.get $i))) (local.get $xv))))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br_if $cols (i32.lt_u (local.get $i) (local.get $vecBytes)))))
        ;; each row's four lanes summed
        (local.set $s0 (f32.add (f32.add (f32x4.extract_lane 0 (local.get $a0))
                                         (f32x4.extract_lane 1 (local.get $a0)))
                                (f32.add (f32x4.extract_lane 2 (local.get $a0))
                                         (f32x4.extract_lane 3 (local.get $a0)))))
        (local.set $s1 (f32.add (f32.add (f32x4.extract_lane 0 (local.get $a1))
                                         (f32x4.extract_lane 1 (local.get $a1)))
                                (f32.add (f32x4.extract_lane 2 (local.get $a1))
                                         (f32x4.extract_lane 3 (local.get $a1)))))
        (local.set $s2 (f32.add (f32.add (f32x4.extract_lane 0 (local.get $a2))
                                         (f32x4.extract_lane 1 (local.get $a2)))
                                (f32.add (f32x4.extract_lane 2 (local.get $a2))
                                         (f32x4.extract_lane 3 (local.get $a2)))))
        (local.set $s3 (f32.add (f32.add (f32x4.extract_lane 0 (local.get $a3))
                                         (f32x4.extract_lane 1 (local.get $a3)))
                                (f32.add (f32x4.extract_lane 2 (local.get $a3))
                                         (f32x4.extract_lane 3 (local.get $a3)))))
        (block $tailDone                                ;; the last nIn % 4 columns, one by one
          (loop $tail
            (br_if $tailDone (i32.ge_u (local.get $i) (local.get $inBytes)))
            (local.set $xs (f32.load (i32.add (local.get $x) (local.get $i))))
            (local.set $s0 (f32.add (local.get $s0) (f32.mul (local.get $xs)
              (f32.load (i32.add (local.get $r0) (local.get $i))))))
            (local.set $s1 (f32.add (local.get $s1) (f32.mul (local.get $xs)
              (f32.load (i32.add (local.get $r1) (local.get $i))))))
            (local.set $s2 (f32.add (local.get $s2) (f32.mul (local.get $xs)
              (f32.load (i32.add (local.get $r2) (local.get $i))))))
            (local.set $s3 (f32.add (local.get $s3) (f32.mul (local.get $xs)
              (f32.load (i32.add (local.get $r3) (local.get $i))))))
            (local.set $i (i32.add (local.get $i) (i32.const 4)))
            (br $tail)))
        (f32.store offset=0 (local.get $y) (local.get $s0))
        (f32.store offset=4 (local.get $y) (local.get $s1))
        (f32.store offset=8 (local.get $y) (local.get $s2))
        (f32.store offset=12 (local.get $y) (local.get $s3))
        (local.set $y (i32.add (local.get $y) (i32.const 16)))
        (local.set $r0 (i32.add (local.get $r3) (local.get $stride)))
        (local.set $o (i32.add (local.get $o) (i32.const 4)))
        (br $rows)))))
