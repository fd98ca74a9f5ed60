'use strict';
// Shared by the node scripts of the tests and benchmarks: loading onnxruntime-node with a clear
// message, the typed arrays behind each tensor dtype, and the seeded generator every script uses
// for deterministic inputs.

/// onnxruntime-node, or exit 1 naming `script` and how to install it.
function requireOrt(script) {
  try {
    return require('onnxruntime-node');
  } catch (e) {
    process.stderr.write(`${script}: cannot load onnxruntime-node (run tests/ort/setup.sh): ${e.message}\n`);
    process.exit(1);
  }
}

const TYPED = {
  float32: Float32Array, float64: Float64Array, float16: Uint16Array,
  int8: Int8Array, uint8: Uint8Array, int16: Int16Array, uint16: Uint16Array,
  int32: Int32Array, uint32: Uint32Array, int64: BigInt64Array, uint64: BigUint64Array,
  bool: Uint8Array,
};

/// mulberry32: a 32-bit seeded generator of uniform numbers in [0, 1).
function mulberry32(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6D2B79F5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

module.exports = { requireOrt, TYPED, mulberry32 };
