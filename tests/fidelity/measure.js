#!/usr/bin/env node
'use strict';
// Measures how well quantized PP-OCR models keep doing their job, against the originals,
// on a deterministic synthetic data set (see dataset.js). Usually run via measure.sh.
//
//   node measure.js [--det ORIG Q] [--rec ORIG Q] [--cls ORIG Q] [--json out.json] [--check]
//        [--keys ppocr_keys_v1.txt] [--channel-order bgr|rgb] [--rec-max-width N]
//        [--min-det-iou 0.95] [--min-rec-acc 0.93] [--threads N] [--cache DIR] [--verbose]
//        [--compare-channel-orders]
// Exit: 0 ok; 1 --check failed or error; 2 usage; 3 prerequisite missing (ORT, ImageMagick, fonts).

const fs = require('fs');
const path = require('path');

let ort;
try {
  ort = require(path.join(__dirname, '..', 'ort', 'node_modules', 'onnxruntime-node'));
} catch (e) {
  process.stderr.write(`measure.js: onnxruntime-node not installed (run tests/ort/setup.sh): ${e.message}\n`);
  process.exit(3);
}
const ds = require('./dataset');
const ocr = require('./ocr');

const KEYS = ['det_iou', 'det_sqnr_db', 'rec_char_accuracy', 'rec_line_match', 'rec_sqnr_db',
  'rec_original_vs_truth_accuracy', 'cls_agreement'];

function usage(msg) {
  if (msg) process.stderr.write(`measure.js: ${msg}\n`);
  process.stderr.write('usage: measure.sh [--det ORIG Q] [--rec ORIG Q] [--cls ORIG Q] [--json out.json] [--check]\n'
    + '         [--keys ppocr_keys_v1.txt] [--channel-order bgr|rgb] [--rec-max-width N]\n'
    + '         [--min-det-iou X] [--min-rec-acc X] [--threads N] [--cache DIR] [--verbose] [--compare-channel-orders]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const a = { det: null, rec: null, cls: null, json: null, check: false, keys: null, channelOrder: 'bgr',
    recMaxWidth: 0, minDetIou: 0.95, minRecAcc: 0.93, threads: 0, cache: null, verbose: false, compareOrders: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = () => { if (i + 1 >= argv.length) usage(`${arg} needs a value`); return argv[++i]; };
    if (arg === '--det' || arg === '--rec' || arg === '--cls') {
      const pair = [next(), next()];
      for (const f of pair) if (!fs.existsSync(f)) usage(`${arg}: no such file ${f}`);
      a[arg.slice(2)] = pair;
    } else if (arg === '--json') a.json = next();
    else if (arg === '--check') a.check = true;
    else if (arg === '--keys') a.keys = next();
    else if (arg === '--channel-order') {
      a.channelOrder = next();
      if (!['bgr', 'rgb'].includes(a.channelOrder)) usage('--channel-order is bgr or rgb');
    } else if (arg === '--rec-max-width') a.recMaxWidth = Number(next());
    else if (arg === '--min-det-iou') a.minDetIou = Number(next());
    else if (arg === '--min-rec-acc') a.minRecAcc = Number(next());
    else if (arg === '--threads') a.threads = Number(next());
    else if (arg === '--cache') a.cache = next();
    else if (arg === '--verbose') a.verbose = true;
    else if (arg === '--compare-channel-orders') a.compareOrders = true;
    else if (arg === '-h' || arg === '--help') usage();
    else usage(`unknown argument ${arg}`);
  }
  if (!a.det && !a.rec && !a.cls) usage('give at least one of --det, --rec, --cls');
  if (a.rec && !a.keys) {
    a.keys = path.join(path.dirname(a.rec[0]), 'ppocr_keys_v1.txt');
    if (!fs.existsSync(a.keys)) usage(`no ppocr_keys_v1.txt next to ${a.rec[0]}: give --keys`);
  }
  return a;
}

const log = (m) => process.stderr.write(`${m}\n`);

async function session(file, threads) {
  const opts = { graphOptimizationLevel: 'all', executionProviders: ['cpu'] };
  if (threads > 0) { opts.intraOpNumThreads = threads; opts.interOpNumThreads = 1; }
  try {
    return await ort.InferenceSession.create(file, opts);
  } catch (e) {
    throw new Error(`cannot load ${file}: ${e.message}`);
  }
}

async function run(sess, input) {
  const feeds = { [sess.inputNames[0]]: new ort.Tensor('float32', input.data, input.dims) };
  const out = await sess.run(feeds);
  return out[sess.outputNames[0]];
}

function loadImg(entry) { return ds.readPpm(fs.readFileSync(entry.file)); }

async function measureDet(a, data, r) {
  const [so, sq] = [await session(a.det[0], a.threads), await session(a.det[1], a.threads)];
  if (a.compareOrders) {
    let i2 = 0; let u2 = 0; let nb = 0; let nr = 0; let mb = 0; let mr = 0;
    for (const p of data.pages) {
      const img = loadImg(p);
      const b = (await run(so, ocr.detInput(img, 'bgr'))).data; const g = (await run(so, ocr.detInput(img, 'rgb'))).data;
      for (let i = 0; i < b.length; i++) {
        const x = b[i] > 0.3; const y = g[i] > 0.3;
        if (x && y) i2++; if (x || y) u2++; if (x) { nb++; mb += b[i]; } if (y) { nr++; mr += g[i]; }
      }
    }
    log(`original det, bgr vs rgb: text px ${nb} vs ${nr}, mean text prob ${(mb / nb).toFixed(4)} vs ${(mr / nr).toFixed(4)}, mask IoU ${(i2 / u2).toFixed(4)}`);
  }
  let inter = 0; let union = 0; let origText = 0; const sq_ = new ocr.Sqnr();
  for (const p of data.pages) {
    const input = ocr.detInput(loadImg(p), a.channelOrder);
    const [yo, yq] = [await run(so, input), await run(sq, input)];
    const o = yo.data; const q = yq.data;
    if (o.length !== q.length) throw new Error(`det output sizes differ: [${yo.dims}] vs [${yq.dims}]`);
    sq_.add(o, q);
    let pi = 0; let pu = 0; let pt = 0;
    for (let i = 0; i < o.length; i++) {
      const mo = o[i] > 0.3; const mq = q[i] > 0.3;
      if (mo && mq) pi++;
      if (mo || mq) pu++;
      if (mo) pt++;
    }
    inter += pi; union += pu; origText += pt;
    if (a.verbose) log(`det ${path.basename(p.file)} [${yo.dims}] text px ${pt} IoU ${(pu ? pi / pu : 1).toFixed(4)}`);
  }
  if (origText === 0) log('warning: the original det model found no text on the rendered pages');
  r.det_iou = union ? inter / union : 1;
  r.det_sqnr_db = sq_.db();
  r.det_pages = data.pages.length;
  r.det_original_text_pixels = origText;
}

async function recDecodeAll(sess, data, charset, order, maxW) {
  const res = [];
  for (const l of data.lines) {
    const y = await run(sess, ocr.recInput(loadImg(l), order, maxW));
    const [, T, C] = y.dims;
    const d = ocr.ctcDecode(y.data, T, C, charset);
    // The padded margins of a line image often decode as a leading/trailing space: ignore those.
    res.push({ y, text: d.text.trim(), conf: d.conf });
  }
  return res;
}

function truthAccuracy(decodes, data) {
  let ed = 0; let len = 0; let exact = 0;
  decodes.forEach((d, i) => {
    const t = data.lines[i].text;
    ed += ocr.editDistance(d.text, t); len += Array.from(t).length;
    if (d.text === t) exact++;
  });
  return { acc: 1 - ed / len, exact: exact / decodes.length };
}

async function measureRec(a, data, r) {
  const charset = ocr.loadCharset(a.keys);
  const so = await session(a.rec[0], a.threads);
  const sq = await session(a.rec[1], a.threads);
  if (a.compareOrders) {
    for (const order of ['bgr', 'rgb']) {
      const t = truthAccuracy(await recDecodeAll(so, data, charset, order, a.recMaxWidth), data);
      log(`original rec vs truth, channel order ${order}: char accuracy ${t.acc.toFixed(4)}, exact lines ${t.exact.toFixed(4)}`);
    }
  }
  const dOrig = await recDecodeAll(so, data, charset, a.channelOrder, a.recMaxWidth);
  const dQ = await recDecodeAll(sq, data, charset, a.channelOrder, a.recMaxWidth);
  const s = new ocr.Sqnr();
  let ed = 0; let len = 0; let match = 0;
  dOrig.forEach((o, i) => {
    const q = dQ[i];
    s.add(o.y.data, q.y.data);
    const e = ocr.editDistance(q.text, o.text);
    ed += e; len += Array.from(o.text).length;
    if (q.text === o.text) match++;
    if (a.verbose) {
      log(`rec ${String(i).padStart(3)} truth ${JSON.stringify(data.lines[i].text)} orig ${JSON.stringify(o.text)}`
        + `${e ? ` quant ${JSON.stringify(q.text)}` : ''}`);
    }
  });
  r.rec_char_accuracy = len ? 1 - ed / len : (ed === 0 ? 1 : 0);
  r.rec_line_match = match / dOrig.length;
  r.rec_sqnr_db = s.db();
  const to = truthAccuracy(dOrig, data); const tq = truthAccuracy(dQ, data);
  r.rec_original_vs_truth_accuracy = to.acc;
  r.rec_original_vs_truth_line_match = to.exact;
  r.rec_quantized_vs_truth_accuracy = tq.acc;
  r.rec_lines = dOrig.length;
}

async function measureCls(a, data, r) {
  const so = await session(a.cls[0], a.threads);
  const sq = await session(a.cls[1], a.threads);
  let agree = 0; let n = 0; let origRight = 0; const s = new ocr.Sqnr();
  for (const l of data.lines) {
    const img = loadImg(l);
    for (const [label, im] of [[0, img], [1, ocr.rotate180(img)]]) {
      const input = ocr.clsInput(im, a.channelOrder);
      const [yo, yq] = [await run(so, input), await run(sq, input)];
      s.add(yo.data, yq.data);
      const ao = yo.data[0] >= yo.data[1] ? 0 : 1; const aq = yq.data[0] >= yq.data[1] ? 0 : 1;
      if (ao === aq) agree++;
      if (ao === label) origRight++;
      n++;
    }
  }
  r.cls_agreement = agree / n;
  r.cls_sqnr_db = s.db();
  r.cls_original_vs_truth_accuracy = origRight / n;
  r.cls_images = n;
}

function fmt(k, v) {
  if (v === null || v === undefined) return '-';
  if (/_db$/.test(k)) return `${v.toFixed(2)} dB`;
  if (/_(pages|pixels|lines|images)$/.test(k)) return String(v);
  return v.toFixed(4);
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const t0 = Date.now();
  let data;
  try {
    data = ds.ensureDataset(a.cache || undefined, log);
  } catch (e) {
    log(`measure.js: ${e.message}`);
    process.exit(e.prerequisite ? 3 : 1);
  }
  const r = {};
  for (const k of KEYS) r[k] = null;
  const timings = {};
  for (const [name, fn] of [['det', measureDet], ['rec', measureRec], ['cls', measureCls]]) {
    if (!a[name]) continue;
    const t = Date.now();
    await fn(a, data, r);
    timings[name] = (Date.now() - t) / 1000;
  }
  r.channel_order = a.channelOrder;
  r.seconds = timings;
  r.seconds.total = (Date.now() - t0) / 1000;

  const failures = [];
  if (a.check) {
    if (a.det && !(r.det_iou >= a.minDetIou)) failures.push(`det_iou ${fmt('', r.det_iou)} < ${a.minDetIou}`);
    if (a.rec && !(r.rec_char_accuracy >= a.minRecAcc)) failures.push(`rec_char_accuracy ${fmt('', r.rec_char_accuracy)} < ${a.minRecAcc}`);
    r.check = { passed: failures.length === 0, min_det_iou: a.minDetIou, min_rec_char_accuracy: a.minRecAcc, failures };
  }

  const rows = Object.keys(r).filter((k) => k !== 'seconds' && k !== 'check' && k !== 'channel_order' && r[k] !== null);
  const width = Math.max(...rows.map((k) => k.length));
  console.log(`${'metric'.padEnd(width)}  value`);
  for (const k of rows) console.log(`${k.padEnd(width)}  ${fmt(k, r[k])}`);
  console.log(`${'time'.padEnd(width)}  ${Object.entries(timings).map(([k, v]) => `${k} ${v.toFixed(1)}s`).join(', ')}`);
  if (a.json) fs.writeFileSync(a.json, `${JSON.stringify(r, null, 2)}\n`);
  if (a.check) {
    if (failures.length) { console.log(`CHECK FAILED: ${failures.join('; ')}`); process.exit(1); }
    console.log('check passed');
  }
}

main().catch((e) => { log(`measure.js: ${e && e.message ? e.message : e}`); process.exit(1); });
