#!/usr/bin/env node
'use strict';
// Inference cost of pqtool's output formats in ONNX Runtime (CPU execution provider):
// session-create ("load") time and run time of each quantized variant of a model against
// its fp32 original, on a fixed synthetic input of the model's real size.
//
//   node infer_bench.js --manifest variants.tsv [--threads 1,2] [--opt-level all]
//        [--run-seconds 20] [--load-seconds 10] [--min-rounds 10] [--max-rounds 300]
//        [--min-loads 5] [--max-loads 30] [--warmup 3] [--lead-in-ms 50] [--no-folding-check]
//        [--csv out.csv] [--md out.md]
//   node infer_bench.js --dump-inputs DIR      (writes the det, rec and cls inputs as PGM images)
//
// variants.tsv (written by bench/run_inference.sh), one variant per line, tab-separated:
//   model  variant  file  note
// `model` is det, rec or cls (it picks the input); `variant` is a label such as "fp32" or
// "lut 4"; the model's fp32 original must be labelled "fp32". A `file` of "-" marks a variant
// pqtool refused; `note` then says why and the row is reported without timings.
//
// Method, per model and intra-op thread count:
//   1. Every session is created and released once untimed (file into the page cache, ONNX
//      Runtime's one-time initialisation).
//   2. Load: repetitions of "create a session, release it" for every variant in turn, the
//      order rotated by one variant per repetition, until --load-seconds have passed
//      (between --min-loads and --max-loads repetitions). The create time covers reading the
//      file, building the graph and ONNX Runtime's graph optimizations (constant folding).
//   3. Run: one session per variant, --warmup runs each (their outputs are checked), then
//      rounds in which every variant takes a turn, order rotated per round, until
//      --run-seconds have passed (between --min-rounds and --max-rounds rounds). A turn is
//      one timed run, or for a variant whose run is shorter than --lead-in-ms, about that
//      long of untimed runs followed by about as long of timed runs: the timed runs then
//      find the weights in cache and the thread pool awake, as when one session serves
//      requests back to back (the other sessions' runs in between would otherwise add cache
//      misses and thread wake-ups that a steady state does not have).
// Run statistics (median, quartiles, min, max) are over all timed runs.
// Interleaving puts load on the machine into every variant's samples alike. A variant's
// ratio is the median over repetitions/rounds of (its time / its baseline's time in the same
// repetition/round; for runs, the median of the turn), so slow drifts of the machine cancel
// out.
//
// The folding check (on by default) adds fp32 and "lut 4" with graph optimizations disabled:
// there the lut decode subgraph runs at every inference instead of being folded at load.
// Baselines: "fp32" for every variant, "fp32" again for "fp32 (opt disabled)", and
// "fp32 (opt disabled)" for the other disabled variants.

const fs = require('fs');
const os = require('os');
const path = require('path');
const { performance } = require('perf_hooks');
const { mulberry32 } = require('../../tests/ort/ort_common');

const kRepoRoot = path.resolve(__dirname, '..', '..');
const kOrtDir = path.join(kRepoRoot, 'tests', 'ort');

let ort;
try {
  ort = require(require.resolve('onnxruntime-node', { paths: [kOrtDir] }));
} catch (e) {
  process.stderr.write(`infer_bench.js: cannot load onnxruntime-node (run tests/ort/setup.sh): ${e.message}\n`);
  process.exit(3);
}

const kBaseline = 'fp32';
const kDisabledSuffix = ' (opt disabled)';
const kFoldingCheckVariants = ['fp32', 'lut 4'];
const kExactSqnrDb = Infinity;

// ---------------------------------------------------------------------------------------
// Options

function usage(msg) {
  if (msg) process.stderr.write(`infer_bench.js: ${msg}\n`);
  process.stderr.write('usage: node infer_bench.js --manifest variants.tsv [--threads 1,2] [--opt-level all]\n'
    + '       [--run-seconds S] [--load-seconds S] [--min-rounds N] [--max-rounds N] [--min-loads N]\n'
    + '       [--max-loads N] [--warmup N] [--lead-in-ms MS] [--no-folding-check] [--csv F] [--md F]\n'
    + '       node infer_bench.js --dump-inputs DIR\n');
  process.exit(2);
}

function parseArgs(argv) {
  const a = {
    manifest: null, dumpInputs: null, threads: [1], optLevel: 'all', runSeconds: 20, loadSeconds: 10,
    minRounds: 10, maxRounds: 300, minLoads: 5, maxLoads: 30, warmup: 3, leadInMs: 50, foldingCheck: true,
    csv: null, md: null,
  };
  const positiveInt = (name, s) => {
    const v = Number(s);
    if (!Number.isInteger(v) || v < 1) usage(`${name} takes a positive integer`);
    return v;
  };
  const positiveNumber = (name, s) => {
    const v = Number(s);
    if (!(v > 0)) usage(`${name} takes a positive number`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = () => { if (i + 1 >= argv.length) usage(`${arg} needs a value`); return argv[++i]; };
    if (arg === '--manifest') a.manifest = next();
    else if (arg === '--dump-inputs') a.dumpInputs = next();
    else if (arg === '--threads') {
      a.threads = next().split(',').map((s) => positiveInt('--threads', s));
      if (a.threads.some((t) => t > 2)) process.stderr.write('infer_bench.js: note: more than 2 intra-op threads\n');
    } else if (arg === '--opt-level') {
      a.optLevel = next();
      if (!['basic', 'extended', 'all'].includes(a.optLevel)) usage(`bad --opt-level ${a.optLevel}`);
    } else if (arg === '--run-seconds') a.runSeconds = positiveNumber(arg, next());
    else if (arg === '--load-seconds') a.loadSeconds = positiveNumber(arg, next());
    else if (arg === '--min-rounds') a.minRounds = positiveInt(arg, next());
    else if (arg === '--max-rounds') a.maxRounds = positiveInt(arg, next());
    else if (arg === '--min-loads') a.minLoads = positiveInt(arg, next());
    else if (arg === '--max-loads') a.maxLoads = positiveInt(arg, next());
    else if (arg === '--warmup') a.warmup = positiveInt(arg, next());
    else if (arg === '--lead-in-ms') {
      a.leadInMs = Number(next());
      if (!(a.leadInMs >= 0)) usage('--lead-in-ms takes a number >= 0');
    }
    else if (arg === '--no-folding-check') a.foldingCheck = false;
    else if (arg === '--csv') a.csv = next();
    else if (arg === '--md') a.md = next();
    else if (arg === '-h' || arg === '--help') usage();
    else usage(`unexpected argument ${arg}`);
  }
  if (!a.manifest && !a.dumpInputs) usage('--manifest is required');
  if (a.maxRounds < a.minRounds) usage('--max-rounds is below --min-rounds');
  if (a.maxLoads < a.minLoads) usage('--max-loads is below --min-loads');
  return a;
}

// ---------------------------------------------------------------------------------------
// Inputs: deterministic synthetic images in the shapes and normalisations PaddleOCR uses.

// A gray image: paper with mild noise, and lines of "words" made of glyph-like strokes.
class Page {
  constructor(width, height, rand) {
    this.width = width;
    this.height = height;
    this.rand = rand;
    this.pixels = new Uint8Array(width * height);
    for (let i = 0; i < this.pixels.length; i++) this.pixels[i] = 238 + Math.floor(rand() * 14);
  }

  fill(x0, y0, w, h, value) {
    const x1 = Math.min(this.width, x0 + w);
    const y1 = Math.min(this.height, y0 + h);
    for (let y = Math.max(0, y0); y < y1; y++) {
      for (let x = Math.max(0, x0); x < x1; x++) this.pixels[y * this.width + x] = value;
    }
  }

  // One glyph in a cell of glyphHeight x 0.6*glyphHeight: two to four bars.
  glyph(x, y, glyphHeight) {
    const r = this.rand;
    const w = Math.max(3, Math.round(glyphHeight * 0.6));
    const stroke = Math.max(1, Math.round(glyphHeight / 8));
    const ink = 20 + Math.floor(r() * 40);
    const bars = 2 + Math.floor(r() * 3);
    for (let b = 0; b < bars; b++) {
      if (r() < 0.5) this.fill(x + Math.floor(r() * (w - stroke)), y, stroke, glyphHeight, ink);
      else this.fill(x, y + Math.floor(r() * (glyphHeight - stroke)), w, stroke, ink);
    }
    return w;
  }

  // A line of words of 2–9 glyphs from x up to xMax (the last word is cut to fit).
  textLine(x, y, xMax, glyphHeight) {
    const r = this.rand;
    const gap = Math.max(1, Math.round(glyphHeight * 0.12));
    const space = Math.round(glyphHeight * 0.5);
    const advance = Math.max(3, Math.round(glyphHeight * 0.6)) + gap;
    for (;;) {
      const letters = Math.min(2 + Math.floor(r() * 8), Math.floor((xMax - x) / advance));
      if (letters < 1) break;
      for (let k = 0; k < letters; k++) x += this.glyph(x, y, glyphHeight) + gap;
      x += space;
    }
  }
}

// det: a 640x640 document page (paragraphs of three text sizes, ragged line ends).
function detPage(width, height, rand) {
  const page = new Page(width, height, rand);
  const margin = Math.round(width * 0.06);
  let y = margin;
  while (y < height - margin) {
    const glyphHeight = [12, 18, 26][Math.floor(rand() * 3)];
    const lines = 2 + Math.floor(rand() * 5);
    for (let l = 0; l < lines && y + glyphHeight < height - margin; l++) {
      const last = l === lines - 1;
      const xMax = width - margin - (last ? Math.floor(rand() * width * 0.5) : 0);
      page.textLine(margin, y, xMax, glyphHeight);
      y += Math.round(glyphHeight * 1.6);
    }
    y += glyphHeight; // paragraph gap
  }
  return page;
}

// rec / cls: one text line, glyphs 2/3 of the height, left-aligned.
function linePage(width, height, rand) {
  const page = new Page(width, height, rand);
  const glyphHeight = Math.round(height * 2 / 3);
  page.textLine(4, Math.round((height - glyphHeight) / 2), width - 4, glyphHeight);
  return page;
}

// NCHW float32, three equal gray channels normalised per channel.
function toTensor(page, mean, std) {
  const plane = page.width * page.height;
  const data = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < plane; i++) data[c * plane + i] = (page.pixels[i] / 255 - mean[c]) / std[c];
  }
  return new ort.Tensor('float32', data, [1, 3, page.height, page.width]);
}

// det: ImageNet mean/std (PaddleOCR's det preprocessing); rec and cls: (x/255 - 0.5) / 0.5.
const kImageNetMean = [0.485, 0.456, 0.406];
const kImageNetStd = [0.229, 0.224, 0.225];
const kHalf = [0.5, 0.5, 0.5];
const MODELS = {
  det: { shape: [640, 640], seed: 11, make: detPage, mean: kImageNetMean, std: kImageNetStd },
  rec: { shape: [320, 48], seed: 12, make: linePage, mean: kHalf, std: kHalf },
  cls: { shape: [192, 48], seed: 13, make: linePage, mean: kHalf, std: kHalf },
};

function makePage(model) {
  const spec = MODELS[model];
  if (!spec) throw new Error(`unknown model kind '${model}' (det, rec or cls)`);
  const [w, h] = spec.shape;
  return spec.make(w, h, mulberry32(spec.seed));
}

function makeInput(model) {
  return toTensor(makePage(model), MODELS[model].mean, MODELS[model].std);
}

function dumpInputs(dir) {
  fs.mkdirSync(dir, { recursive: true });
  for (const model of Object.keys(MODELS)) {
    const page = makePage(model);
    const file = path.join(dir, `${model}.pgm`);
    fs.writeFileSync(file, Buffer.concat([Buffer.from(`P5\n${page.width} ${page.height}\n255\n`), Buffer.from(page.pixels)]));
    process.stdout.write(`${file}\n`);
  }
}

// ---------------------------------------------------------------------------------------
// Statistics

function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

function summary(values) {
  const s = values.slice().sort((x, y) => x - y);
  return {
    n: s.length, median: quantile(s, 0.5), p25: quantile(s, 0.25), p75: quantile(s, 0.75),
    min: s[0], max: s[s.length - 1],
  };
}

// Median over paired samples of a[i] / b[i].
function pairedRatio(a, b) {
  const r = a.map((x, i) => x / b[i]);
  return summary(r).median;
}

// Output fidelity against the baseline: finite check and SQNR over all outputs.
function compareOutputs(outputs, reference) {
  let finite = true;
  let signal = 0;
  let noise = 0;
  for (const [name, t] of Object.entries(outputs)) {
    const y = t.data;
    const ref = reference ? reference[name].data : null;
    for (let i = 0; i < y.length; i++) {
      if (!Number.isFinite(y[i])) finite = false;
      if (ref) {
        signal += ref[i] * ref[i];
        noise += (y[i] - ref[i]) * (y[i] - ref[i]);
      }
    }
  }
  const sqnrDb = !reference ? null : noise === 0 ? kExactSqnrDb : 10 * Math.log10(signal / noise);
  return { finite, sqnrDb };
}

// ---------------------------------------------------------------------------------------
// Measurement

function sessionOptions(optLevel, threads) {
  return {
    executionProviders: ['cpu'], graphOptimizationLevel: optLevel,
    intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential',
  };
}

function rotate(list, k) {
  const s = k % list.length;
  return list.slice(s).concat(list.slice(0, s));
}

async function timeCreate(v, threads) {
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(v.file, sessionOptions(v.optLevel, threads));
  const ms = performance.now() - t0;
  return { session, ms };
}

async function timeRun(session, feeds) {
  const t0 = performance.now();
  const outputs = await session.run(feeds);
  return { outputs, ms: performance.now() - t0 };
}

// Steps 1–3 of the method (see the header) for one model at one thread count.
async function measureModel(model, variants, threads, a) {
  const input = makeInput(model);
  // 1. Untimed create/release of every variant.
  for (const v of variants) {
    const { session } = await timeCreate(v, threads);
    if (session.inputNames.length !== 1) throw new Error(`${v.file}: expected one input`);
    await session.release();
  }
  // 2. Load repetitions, rotated.
  const load = new Map(variants.map((v) => [v, []]));
  const loadStart = performance.now();
  for (let rep = 0; rep < a.maxLoads; rep++) {
    if (rep >= a.minLoads && performance.now() - loadStart > a.loadSeconds * 1000) break;
    for (const v of rotate(variants, rep)) {
      const { session, ms } = await timeCreate(v, threads);
      load.get(v).push(ms);
      await session.release();
    }
  }
  // 3. Run: a session per variant, warm-up with output checks, then rotated rounds.
  const sessions = new Map();
  for (const v of variants) sessions.set(v, (await timeCreate(v, threads)).session);
  const reference = new Map();
  const check = new Map();
  const leadIn = new Map();
  const timedPerTurn = new Map();
  for (const v of variants) {
    const session = sessions.get(v);
    const feeds = { [session.inputNames[0]]: input };
    let outputs;
    const times = [];
    for (let w = 0; w < a.warmup; w++) {
      const r = await timeRun(session, feeds);
      outputs = r.outputs;
      times.push(r.ms);
    }
    reference.set(v, outputs);
    const warmMs = summary(times).min;
    const short = warmMs < a.leadInMs;
    leadIn.set(v, short ? Math.ceil(a.leadInMs / warmMs) : 0);
    timedPerTurn.set(v, short ? Math.ceil(a.leadInMs / warmMs) : 1);
  }
  const base = reference.get(variants.find((v) => v.variant === kBaseline));
  for (const v of variants) check.set(v, compareOutputs(reference.get(v), base));
  const run = new Map(variants.map((v) => [v, []]));
  const turn = new Map(variants.map((v) => [v, []])); // per-turn medians, for the ratios
  const runStart = performance.now();
  for (let round = 0; round < a.maxRounds; round++) {
    if (round >= a.minRounds && performance.now() - runStart > a.runSeconds * 1000) break;
    for (const v of rotate(variants, round)) {
      const session = sessions.get(v);
      const feeds = { [session.inputNames[0]]: input };
      for (let k = 0; k < leadIn.get(v); k++) await session.run(feeds);
      const times = [];
      for (let k = 0; k < timedPerTurn.get(v); k++) times.push((await timeRun(session, feeds)).ms);
      run.get(v).push(...times);
      turn.get(v).push(summary(times).median);
    }
  }
  for (const session of sessions.values()) await session.release();
  return { load, run, turn, check, reference, leadIn, timedPerTurn };
}

function baselineOf(v, variants) {
  const find = (label) => variants.find((u) => u.variant === label);
  if (v.variant === kBaseline) return null;
  if (v.variant === kBaseline + kDisabledSuffix) return find(kBaseline);
  if (v.variant.endsWith(kDisabledSuffix)) return find(kBaseline + kDisabledSuffix);
  return find(kBaseline);
}

// Variants whose outputs are bit-identical, as groups of labels (two or more).
function identicalGroups(variants, reference) {
  const groups = [];
  const key = (outs) => Object.values(outs).map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('base64')).join('|');
  const byKey = new Map();
  for (const v of variants) {
    const k = key(reference.get(v));
    if (!byKey.has(k)) byKey.set(k, []);
    byKey.get(k).push(v.variant);
  }
  for (const g of byKey.values()) if (g.length > 1) groups.push(g);
  return groups;
}

// ---------------------------------------------------------------------------------------
// Manifest and report

function readManifest(file) {
  const rows = [];
  for (const [i, line] of fs.readFileSync(file, 'utf8').split('\n').entries()) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const cols = line.split('\t');
    if (cols.length < 3) throw new Error(`${file}:${i + 1}: expected model, variant, file[, note]`);
    const [model, variant, f, note = ''] = cols;
    if (!MODELS[model]) throw new Error(`${file}:${i + 1}: unknown model kind '${model}'`);
    rows.push({ model, variant, file: f === '-' ? null : f, note });
  }
  return rows;
}

const fmt = (x, digits) => (x === null || x === undefined || Number.isNaN(x) ? '' : x.toFixed(digits));
const msDigits = (x) => (x >= 100 ? 0 : x >= 10 ? 1 : 2);
const ms = (x) => fmt(x, msDigits(x));
const ratio = (x) => (x === null ? '' : `${fmt(x, 2)}×`);
const sqnr = (x) => (x === null ? '' : x === kExactSqnrDb ? 'exact' : `${fmt(x, 1)} dB`);

function markdownTable(rows) {
  const out = [];
  out.push('| variant | threads | file KB | size ×fp32 | load ms median [min–max] | load ×fp32 | run ms median [IQR] | run ×fp32 | outputs vs fp32 |');
  out.push('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    if (r.status !== 'ok') {
      out.push(`| ${r.variant} | ${r.threads ?? ''} | | | ${r.note} | | | | |`);
      continue;
    }
    const load = `${ms(r.load.median)} [${ms(r.load.min)}–${ms(r.load.max)}]`;
    const run = `${ms(r.run.median)} [${ms(r.run.p25)}–${ms(r.run.p75)}]`;
    const outs = r.finite ? (r.sqnrDb === null ? 'finite' : `finite, ${sqnr(r.sqnrDb)}`) : '**non-finite**';
    out.push(`| ${r.variant} | ${r.threads} | ${(r.bytes / 1024).toFixed(0)} | ${fmt(r.sizeRatio, 3)} | ${load} | `
      + `${ratio(r.loadRatio)} | ${run} | ${ratio(r.runRatio)} | ${outs} |`);
  }
  return out.join('\n');
}

const kCsvHeader = ['model', 'variant', 'opt_level', 'threads', 'status', 'file_bytes', 'size_ratio',
  'load_n', 'load_ms_median', 'load_ms_p25', 'load_ms_p75', 'load_ms_min', 'load_ms_max', 'load_ratio',
  'run_n', 'run_ms_median', 'run_ms_p25', 'run_ms_p75', 'run_ms_min', 'run_ms_max', 'run_ratio',
  'outputs_finite', 'out_sqnr_db', 'note'];

function csvRow(r) {
  const q = (s) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const n = (x, d) => (x === null || x === undefined || Number.isNaN(x) ? '' : Number.isFinite(x) ? x.toFixed(d) : 'inf');
  const stats = (s) => (s ? [s.n, n(s.median, 3), n(s.p25, 3), n(s.p75, 3), n(s.min, 3), n(s.max, 3)] : ['', '', '', '', '', '']);
  return [r.model, q(r.variant), r.optLevel ?? '', r.threads ?? '', r.status, r.bytes ?? '', n(r.sizeRatio, 4),
    ...stats(r.load), n(r.loadRatio, 4), ...stats(r.run), n(r.runRatio, 4),
    r.status === 'ok' ? (r.finite ? 1 : 0) : '', n(r.sqnrDb, 2), q(r.note || '')].join(',');
}

function machineLine() {
  const cpus = os.cpus();
  const load = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  return `${cpus.length} × ${cpus[0] ? cpus[0].model.trim() : 'unknown CPU'}, load average ${load}`;
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  if (a.dumpInputs) {
    dumpInputs(a.dumpInputs);
    return;
  }
  const manifest = readManifest(a.manifest);
  const models = [...new Set(manifest.map((r) => r.model))];
  const started = performance.now();
  const machineAtStart = machineLine();
  const csv = [kCsvHeader.join(',')];
  const md = [];
  const ortVersion = require(require.resolve('onnxruntime-node/package.json', { paths: [kOrtDir] })).version;

  for (const model of models) {
    const entries = manifest.filter((r) => r.model === model);
    const variants = entries.filter((r) => r.file !== null).map((r) => ({ ...r, optLevel: a.optLevel }));
    if (!variants.some((v) => v.variant === kBaseline)) throw new Error(`${model}: no '${kBaseline}' variant in the manifest`);
    if (a.foldingCheck) {
      for (const label of kFoldingCheckVariants) {
        const v = variants.find((u) => u.variant === label);
        if (v) variants.push({ ...v, variant: label + kDisabledSuffix, optLevel: 'disabled' });
      }
    }
    for (const v of variants) v.bytes = fs.statSync(v.file).size;
    const fp32Bytes = variants.find((v) => v.variant === kBaseline).bytes;
    const rows = [];
    const notes = [];
    for (const threads of a.threads) {
      const t0 = performance.now();
      process.stderr.write(`infer_bench.js: ${model}, ${variants.length} variants, ${threads} thread(s) ...`);
      const m = await measureModel(model, variants, threads, a);
      process.stderr.write(` ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
      for (const v of variants) {
        const b = baselineOf(v, variants);
        const c = m.check.get(v);
        rows.push({
          model, variant: v.variant, optLevel: v.optLevel, threads, status: 'ok', bytes: v.bytes,
          sizeRatio: v.bytes / fp32Bytes, load: summary(m.load.get(v)), run: summary(m.run.get(v)),
          loadRatio: b ? pairedRatio(m.load.get(v), m.load.get(b)) : 1,
          runRatio: b ? pairedRatio(m.turn.get(v), m.turn.get(b)) : 1,
          finite: c.finite, sqnrDb: v.variant === kBaseline ? null : c.sqnrDb, note: v.note,
        });
      }
      const range = (map) => {
        const lo = Math.min(...map.values());
        const hi = Math.max(...map.values());
        return lo === hi ? `${lo}` : `${lo}–${hi}`;
      };
      const groups = identicalGroups(variants, m.reference);
      notes.push(`${threads} thread${threads > 1 ? 's' : ''}: ${m.load.get(variants[0]).length} loads and `
        + `${m.turn.get(variants[0]).length} rounds per variant; a turn is ${range(m.leadIn)} untimed and `
        + `${range(m.timedPerTurn)} timed runs`
        + (groups.length ? `; bit-identical outputs: ${groups.map((g) => g.join(' = ')).join('; ')}` : '') + '.');
    }
    for (const r of entries.filter((e) => e.file === null)) {
      rows.push({ model, variant: r.variant, optLevel: null, threads: null, status: 'refused', note: r.note });
    }
    md.push(`### ${model} (${path.basename(variants[0].file).replace(/\.onnx$/, '')}), input ${describeInput(model)}`);
    md.push('');
    md.push(markdownTable(rows));
    md.push('');
    md.push(notes.join(' '));
    md.push('');
    for (const r of rows) csv.push(csvRow(r));
  }

  const header = [
    '# Inference cost of the output formats (ONNX Runtime)',
    '',
    `onnxruntime-node ${ortVersion}, CPU execution provider, graph optimization level \`${a.optLevel}\` `
      + `(rows marked "opt disabled": \`disabled\`), inter-op threads 1, sequential execution; node ${process.version}.`,
    `Machine: ${machineAtStart} at start; ${machineLine()} at the end. Total ${((performance.now() - started) / 1000).toFixed(0)} s.`,
    '',
    '- load = `InferenceSession.create(path)` to a ready session (read, graph build, optimizations incl. constant folding);',
    '  run = one `session.run` on the fixed input. Variants are interleaved (rotated round robin).',
    '- ×fp32 columns: median over repetitions/rounds of the paired ratio to the fp32 original measured in the same repetition/round',
    '  ("lut 4 (opt disabled)" against "fp32 (opt disabled)"). size ×fp32 is the file size ratio.',
    '- outputs vs fp32: every output is checked finite; SQNR = 10·log10(Σy²/Σ(y−ŷ)²) over all outputs, against fp32 at the same threads.',
    '',
  ];
  const text = header.concat(md).join('\n');
  if (a.md) fs.writeFileSync(a.md, text);
  if (a.csv) fs.writeFileSync(a.csv, csv.join('\n') + '\n');
  process.stdout.write(text);
}

function describeInput(model) {
  const [w, h] = MODELS[model].shape;
  return model === 'det' ? `1×3×${h}×${w} document page` : `1×3×${h}×${w} text line`;
}

main().catch((e) => {
  process.stderr.write(`\ninfer_bench.js: ${e && e.message ? e.message : e}\n`);
  process.exit(1);
});
