#!/usr/bin/env node
'use strict';
// Generic ONNX Runtime runner for pqtool's tests.
//
//   node run_model.js MODEL.onnx (--inputs inputs.json | --random-inputs SEED) --out-dir DIR
//        [--dim NAME=VALUE]... [--outputs a,b] [--opt-level disabled|basic|extended|all]
//        [--threads N] [--save-inputs]
//
// inputs.json: {"x": {"dims":[1,3,64,64], "dtype":"float32", "file":"x.bin"}, ...}
//   (raw little-endian data; a relative "file" is relative to inputs.json's folder).
// --random-inputs SEED: deterministic inputs for every graph input (mulberry32):
//   floats uniform in [-1,1), integers uniform in [0,10), bools 0/1.
//   Dynamic dims: --dim PARAM=VALUE (symbolic dim name) or --dim INPUT:AXIS=VALUE;
//   otherwise axis 0 -> 1, rank-4 axis 1 -> 3, rank-4 axes 2,3 -> 64, others -> 16.
//   --save-inputs also writes them to DIR/inputs/ with DIR/inputs/inputs.json.
// Writes DIR/<sanitized output name>.bin per output plus DIR/manifest.json
//   {name: {dims, dtype, file}} (file relative to DIR). Any graph output name can
//   be requested with --outputs (e.g. intermediates a test exposed as outputs).
// Exit status: 0 ok, 1 ORT failure (message on stderr), 2 usage error.

const fs = require('fs');
const path = require('path');

const { requireOrt, TYPED, mulberry32 } = require('./ort_common');
const ort = requireOrt('run_model.js');
const { parseModel } = require('./onnx_lite');

function usage(msg) {
  if (msg) process.stderr.write(`run_model.js: ${msg}\n`);
  process.stderr.write('usage: node run_model.js MODEL.onnx (--inputs inputs.json | --random-inputs SEED) --out-dir DIR\n'
    + '       [--dim NAME=VALUE]... [--outputs a,b] [--opt-level disabled|basic|extended|all] [--threads N] [--save-inputs]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const a = { model: null, inputs: null, seed: null, outDir: null, dims: {}, outputs: null,
    optLevel: 'all', threads: 0, saveInputs: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = () => { if (i + 1 >= argv.length) usage(`${arg} needs a value`); return argv[++i]; };
    if (arg === '--inputs') a.inputs = next();
    else if (arg === '--random-inputs') {
      a.seed = Number(next());
      if (!Number.isInteger(a.seed)) usage('--random-inputs takes an integer seed');
    } else if (arg === '--out-dir') a.outDir = next();
    else if (arg === '--dim') {
      const m = /^(.+)=(\d+)$/.exec(next());
      if (!m) usage('--dim takes NAME=VALUE or INPUT:AXIS=VALUE');
      a.dims[m[1]] = Number(m[2]);
    } else if (arg === '--outputs') a.outputs = next().split(',').filter((s) => s.length > 0);
    else if (arg === '--opt-level') {
      a.optLevel = next();
      if (!['disabled', 'basic', 'extended', 'all'].includes(a.optLevel)) usage(`bad --opt-level ${a.optLevel}`);
    } else if (arg === '--threads') a.threads = Number(next());
    else if (arg === '--save-inputs') a.saveInputs = true;
    else if (arg === '-h' || arg === '--help') usage();
    else if (arg.startsWith('--')) usage(`unknown option ${arg}`);
    else if (a.model === null) a.model = arg;
    else usage(`unexpected argument ${arg}`);
  }
  if (!a.model) usage('MODEL.onnx is required');
  if (!a.outDir) usage('--out-dir is required');
  if ((a.inputs === null) === (a.seed === null)) usage('give exactly one of --inputs and --random-inputs');
  return a;
}

// float32 -> IEEE half bits (round to nearest even)
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function toHalf(v) {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  let exp = ((x >>> 23) & 0xff) - 127 + 15;
  let mant = x & 0x7fffff;
  if (exp >= 31) return sign | 0x7c00;
  if (exp <= 0) {
    if (exp < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - exp;
    let h = mant >>> shift;
    if ((mant >>> (shift - 1)) & 1 && ((mant & ((1 << (shift - 1)) - 1)) || (h & 1))) h++;
    return sign | h;
  }
  let h = sign | (exp << 10) | (mant >>> 13);
  if ((mant & 0x1000) && ((mant & 0x2fff) || (h & 1))) h++;
  return h;
}

function concreteDims(input, overrides) {
  if (!input.dims) throw new Error(`input ${input.name} has no shape in the model; cannot make random data`);
  const rank = input.dims.length;
  return input.dims.map((d, axis) => {
    const key = `${input.name}:${axis}`;
    if (key in overrides) return overrides[key];
    if (typeof d === 'number' && d > 0) return d;
    if (typeof d === 'string' && d in overrides) return overrides[d];
    if (axis === 0) return 1;
    if (rank === 4) return axis === 1 ? 3 : 64;
    return 16;
  });
}

function randomTensor(input, dims, rand) {
  const n = dims.reduce((a, b) => a * b, 1);
  const dtype = input.dtype;
  const T = TYPED[dtype];
  if (!T) throw new Error(`input ${input.name}: dtype ${dtype} not supported for random data`);
  const data = new T(n);
  for (let i = 0; i < n; i++) {
    const r = rand();
    if (dtype === 'float32' || dtype === 'float64') data[i] = r * 2 - 1;
    else if (dtype === 'float16') data[i] = toHalf(r * 2 - 1);
    else if (dtype === 'bool') data[i] = r < 0.5 ? 0 : 1;
    else if (dtype === 'int64') data[i] = BigInt(Math.floor(r * 10));
    else if (dtype === 'uint64') data[i] = BigInt(Math.floor(r * 10));
    else data[i] = Math.floor(r * 10);
  }
  return new ort.Tensor(dtype, data, dims);
}

function loadTensor(name, spec, baseDir) {
  const T = TYPED[spec.dtype];
  if (!T) throw new Error(`input ${name}: unsupported dtype ${spec.dtype}`);
  if (!Array.isArray(spec.dims)) throw new Error(`input ${name}: dims missing`);
  const file = path.resolve(baseDir, spec.file);
  const buf = fs.readFileSync(file);
  const n = spec.dims.reduce((a, b) => a * b, 1);
  if (buf.length !== n * T.BYTES_PER_ELEMENT) {
    throw new Error(`input ${name}: ${file} has ${buf.length} bytes, expected ${n * T.BYTES_PER_ELEMENT} for dims [${spec.dims}] ${spec.dtype}`);
  }
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length); // aligned copy
  return new ort.Tensor(spec.dtype, new T(ab), spec.dims);
}

function tensorBytes(t) {
  const d = t.data;
  if (!ArrayBuffer.isView(d)) throw new Error(`output type ${t.type} cannot be written as raw data`);
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

// One entry per line, dims inline.
function manifestJson(man) {
  const lines = Object.entries(man).map(([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v)}`);
  return `{\n${lines.join(',\n')}\n}\n`;
}

function sanitize(name) {
  return name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_') || '_';
}

function uniqueFile(name, used) {
  let base = sanitize(name);
  let f = `${base}.bin`;
  for (let k = 1; used.has(f.toLowerCase()); k++) f = `${base}_${k}.bin`;
  used.add(f.toLowerCase());
  return f;
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const opts = { graphOptimizationLevel: a.optLevel, executionProviders: ['cpu'] };
  if (a.threads > 0) { opts.intraOpNumThreads = a.threads; opts.interOpNumThreads = 1; }
  let session;
  try {
    session = await ort.InferenceSession.create(a.model, opts); // path: external data works
  } catch (e) {
    process.stderr.write(`run_model.js: session creation failed for ${a.model}: ${e.message}\n`);
    process.exit(1);
  }
  const feeds = {};
  if (a.inputs !== null) {
    const spec = JSON.parse(fs.readFileSync(a.inputs, 'utf8'));
    const base = path.dirname(path.resolve(a.inputs));
    for (const [name, s] of Object.entries(spec)) feeds[name] = loadTensor(name, s, base);
  } else {
    let info;
    try {
      info = parseModel(fs.readFileSync(a.model));
    } catch (e) {
      throw new Error(`cannot read graph inputs of ${a.model}: ${e.message}`);
    }
    const rand = mulberry32(a.seed);
    for (const input of info.inputs) {
      feeds[input.name] = randomTensor(input, concreteDims(input, a.dims), rand);
    }
  }

  fs.mkdirSync(a.outDir, { recursive: true });
  if (a.saveInputs) {
    const dir = path.join(a.outDir, 'inputs');
    fs.mkdirSync(dir, { recursive: true });
    const man = {}; const used = new Set();
    for (const [name, t] of Object.entries(feeds)) {
      const file = uniqueFile(name, used);
      fs.writeFileSync(path.join(dir, file), tensorBytes(t));
      man[name] = { dims: t.dims.slice(), dtype: t.type, file };
    }
    fs.writeFileSync(path.join(dir, 'inputs.json'), manifestJson(man));
  }

  const fetches = a.outputs || session.outputNames;
  for (const name of fetches) {
    if (!session.outputNames.includes(name)) {
      process.stderr.write(`run_model.js: ${a.model} has no output named '${name}'\n`);
      process.exit(1);
    }
  }
  let results;
  try {
    // Always fetch every output and select afterwards: onnxruntime-node 1.20 returns the wrong
    // tensor when asked for a single output that is not the first one.
    results = await session.run(feeds);
  } catch (e) {
    process.stderr.write(`run_model.js: run failed for ${a.model}: ${e.message}\n`);
    process.exit(1);
  }
  const manifest = {}; const used = new Set();
  for (const name of fetches) {
    const t = results[name];
    const file = uniqueFile(name, used);
    fs.writeFileSync(path.join(a.outDir, file), tensorBytes(t));
    manifest[name] = { dims: t.dims.map(Number), dtype: t.type, file };
  }
  fs.writeFileSync(path.join(a.outDir, 'manifest.json'), manifestJson(manifest));
}

main().catch((e) => {
  process.stderr.write(`run_model.js: ${e && e.message ? e.message : e}\n`);
  process.exit(1);
});
