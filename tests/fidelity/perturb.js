#!/usr/bin/env node
'use strict';
// Makes a damaged copy of an ONNX model to check that measure.sh notices damage:
// every float32 weight (initializer or Constant node) of a Conv/ConvTranspose/Gemm/MatMul
// is fake-quantized in place to a symmetric grid of --bits bits, round(w/s)*s with
// s = max|w| / (2^(bits-1)-1) per output channel (axis 0) for Conv, per tensor otherwise.
// This roughly simulates weight-only quantization; the file is otherwise byte-identical.
//
//   node perturb.js IN.onnx OUT.onnx [--bits 4] [--min-elems 64]

const fs = require('fs');
const { parseModel } = require('../ort/onnx_lite');

function main() {
  const args = process.argv.slice(2);
  let bits = 4; let minElems = 64; const files = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--bits') bits = Number(args[++i]);
    else if (args[i] === '--min-elems') minElems = Number(args[++i]);
    else files.push(args[i]);
  }
  if (files.length !== 2 || !(bits >= 2 && bits <= 16)) {
    process.stderr.write('usage: node perturb.js IN.onnx OUT.onnx [--bits 2..16] [--min-elems N]\n');
    process.exit(2);
  }
  const buf = fs.readFileSync(files[0]);
  const model = parseModel(buf);
  const qmax = 2 ** (bits - 1) - 1;
  // weight name -> per-channel?
  const weights = new Map();
  for (const nd of model.nodes) {
    if (nd.opType === 'Conv' || nd.opType === 'ConvTranspose') weights.set(nd.inputs[1], nd.opType === 'Conv');
    else if (nd.opType === 'Gemm') weights.set(nd.inputs[1], false);
    else if (nd.opType === 'MatMul') { weights.set(nd.inputs[1], false); weights.set(nd.inputs[0], false); }
  }
  let tensors = 0; let elems = 0;
  for (const t of [...model.initializers, ...model.constants]) {
    const loc = t.raw || t.floatData;
    if (!weights.has(t.name) || t.dtype !== 'float32' || !loc || t.external) continue;
    const n = loc.length / 4;
    if (n < minElems) continue;
    const groups = weights.get(t.name) && t.dims.length > 1 ? t.dims[0] : 1;
    const per = n / groups;
    for (let g = 0; g < groups; g++) {
      const base = loc.offset + 4 * g * per;
      let maxAbs = 0;
      for (let i = 0; i < per; i++) maxAbs = Math.max(maxAbs, Math.abs(buf.readFloatLE(base + 4 * i)));
      if (maxAbs === 0) continue;
      const s = maxAbs / qmax;
      for (let i = 0; i < per; i++) {
        const off = base + 4 * i;
        const q = Math.max(-qmax, Math.min(qmax, Math.round(buf.readFloatLE(off) / s)));
        buf.writeFloatLE(q * s, off);
      }
    }
    tensors++; elems += n;
  }
  fs.writeFileSync(files[1], buf);
  process.stderr.write(`perturb.js: fake-quantized ${tensors} tensors (${elems} weights) to ${bits} bits -> ${files[1]}\n`);
}

main();
