#!/usr/bin/env node
'use strict';
// Runs many models in one ONNX Runtime process, so a test with hundreds of small cases pays
// for starting node and loading the runtime once.
//
//   node run_batch.js JOBS.json
//
// JOBS.json: [{"model": "a.onnx", "inputs": "inputs.json", "out_dir": "DIR",
//              "opt_level": "all"|"basic"|"extended"|"disabled", "outputs": ["y", ...]}, ...]
// ("outputs" optional: all graph outputs when absent.) inputs.json has run_model.js's form:
// {"x": {"dims": [1,3,8,8], "dtype": "float32", "file": "x.bin"}}, "file" relative to it.
// Each job writes DIR/<sanitized output name>.bin and DIR/manifest.json like run_model.js, or
// DIR/error.txt with ORT's message when the session cannot be created or run: one failing model
// does not stop the others.
// Exit status: 0 when every job ran (failed models included), 1 when the jobs file is unreadable,
// 2 usage error.

const fs = require('fs');
const path = require('path');

const { requireOrt, TYPED } = require('./ort_common');
const ort = requireOrt('run_batch.js');

const LEVELS = ['disabled', 'basic', 'extended', 'all'];

function loadInputs(specPath) {
  const spec = JSON.parse(fs.readFileSync(specPath, 'utf8'));
  const base = path.dirname(path.resolve(specPath));
  const feeds = {};
  for (const [name, s] of Object.entries(spec)) {
    const T = TYPED[s.dtype];
    if (!T) throw new Error(`input ${name}: unsupported dtype ${s.dtype}`);
    const buf = fs.readFileSync(path.resolve(base, s.file));
    const n = s.dims.reduce((a, b) => a * b, 1);
    if (buf.length !== n * T.BYTES_PER_ELEMENT) throw new Error(`input ${name}: ${buf.length} bytes for [${s.dims}]`);
    const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length);
    feeds[name] = new ort.Tensor(s.dtype, new T(ab), s.dims);
  }
  return feeds;
}

function sanitize(name) {
  return name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_') || '_';
}

async function runJob(job, inputCache) {
  fs.mkdirSync(job.out_dir, { recursive: true });
  const level = job.opt_level || 'all';
  if (!LEVELS.includes(level)) throw new Error(`bad opt_level ${level}`);
  if (!inputCache.has(job.inputs)) inputCache.set(job.inputs, loadInputs(job.inputs));
  const session = await ort.InferenceSession.create(job.model,
    { graphOptimizationLevel: level, executionProviders: ['cpu'] });
  const fetches = job.outputs && job.outputs.length > 0 ? job.outputs : session.outputNames;
  for (const name of fetches) {
    if (!session.outputNames.includes(name)) throw new Error(`${job.model} has no output named '${name}'`);
  }
  // Every output is fetched and the requested ones picked afterwards (see run_model.js).
  const results = await session.run(inputCache.get(job.inputs));
  const manifest = {};
  const used = new Set();
  for (const name of fetches) {
    const t = results[name];
    if (!ArrayBuffer.isView(t.data)) throw new Error(`output ${name} of type ${t.type} has no raw data`);
    let file = `${sanitize(name)}.bin`;
    for (let k = 1; used.has(file.toLowerCase()); k++) file = `${sanitize(name)}_${k}.bin`;
    used.add(file.toLowerCase());
    fs.writeFileSync(path.join(job.out_dir, file), Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    manifest[name] = { dims: t.dims.map(Number), dtype: t.type, file };
  }
  fs.writeFileSync(path.join(job.out_dir, 'manifest.json'), JSON.stringify(manifest));
  if (typeof session.release === 'function') await session.release();
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length !== 1 || args[0].startsWith('-')) {
    process.stderr.write('usage: node run_batch.js JOBS.json\n');
    process.exit(2);
  }
  let jobs;
  try {
    jobs = JSON.parse(fs.readFileSync(args[0], 'utf8'));
  } catch (e) {
    process.stderr.write(`run_batch.js: cannot read ${args[0]}: ${e.message}\n`);
    process.exit(1);
  }
  const inputCache = new Map();
  for (const job of jobs) {
    try {
      await runJob(job, inputCache);
    } catch (e) {
      fs.mkdirSync(job.out_dir, { recursive: true });
      fs.writeFileSync(path.join(job.out_dir, 'error.txt'), `${e && e.message ? e.message : e}\n`);
    }
  }
}

main().catch((e) => {
  process.stderr.write(`run_batch.js: ${e && e.message ? e.message : e}\n`);
  process.exit(1);
});
