'use strict';
// Deterministic synthetic OCR data set rendered with ImageMagick:
//   pages: document-like pages for the det model;
//   lines: single text lines (with ground truth) for the rec and cls models.
// Images are rendered once into a cache folder as binary PPM (8-bit RGB),
// with a little seeded gray noise added here (not by ImageMagick).

const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const { spawnSync } = require('child_process');
const { mulberry32 } = require('../ort/ort_common');

const DATASET_VERSION = 1;

const FONT_DIRS = {
  dejavu: '/usr/share/fonts/truetype/dejavu', // Debian fonts-dejavu-core
  liberation: '/usr/share/fonts/truetype/liberation', // Debian fonts-liberation
};
const FONTS = [
  `${FONT_DIRS.dejavu}/DejaVuSans.ttf`,
  `${FONT_DIRS.liberation}/LiberationSerif-Regular.ttf`,
  `${FONT_DIRS.dejavu}/DejaVuSansMono.ttf`,
  `${FONT_DIRS.liberation}/LiberationSans-Regular.ttf`,
  `${FONT_DIRS.dejavu}/DejaVuSerif.ttf`,
  `${FONT_DIRS.dejavu}/DejaVuSans-Bold.ttf`,
  `${FONT_DIRS.liberation}/LiberationMono-Regular.ttf`,
];

// Text lines for rec/cls: English with digits and punctuation, 8-40 characters.
// No '%', '\\' or leading '@' (ImageMagick would interpret them in label:).
const LINES = [
  'Invoice No. 20417',
  'Total amount due: $1,284.50',
  'Please reply by March 3, 2024.',
  'Room 12B, 4th floor',
  'The quick brown fox jumps over it.',
  'Order #55-7781 shipped today',
  'Tel: +1 (415) 555-0199',
  'Chapter 7: Results',
  'Batch size = 32, lr = 0.001',
  'Keep out of reach of children.',
  'Net weight 250 g',
  'Version 3.14.2 (stable)',
  'Meeting moved to 10:30 AM',
  'Temperature: -4 C at night',
  'See page 112 for details.',
  'Model accuracy was 97.6 points',
  'Apples, pears & plums',
  'Hello, world!',
  'Account: 0042-7719-3308',
  'Best before 2025/11/30',
  'Figure 3. Loss vs. epochs',
  'Open daily 9:00-17:00',
  'Is this the final draft?',
  'Section 4.2 describes the setup.',
  'Quantity: 18 boxes',
  'Serial: QX7-2291-KL',
  'Do not fold, bend or staple.',
  'Price per unit: 3.75 EUR',
  'Mon, Tue, Wed; closed on Sun',
  'Gate 23 - Boarding at 14:05',
  'Total: 1,024 pages',
  'Signed: J. Smith, 12/04/2023',
  'Input voltage 220-240 V',
  'Step 1: remove the cover',
  'Warning: hot surface!',
  'Reference ID A19-004',
  'The report is due on Friday.',
  'Population: 8,336,817',
  'Call us at 1-800-555-0100',
  'Discount of 15 percent applies',
  'Train 742 departs from platform 6',
  'Height 1.82 m, weight 76 kg',
  'Thank you for your order!',
  'Lot 8812 / Exp. 09-2026',
  'Question 5 (b): explain why.',
  'Learning rate schedule: cosine',
  'Address: 221B Baker Street',
  'Score: 42 out of 50',
  'Error code 0x3F2A',
  'Page 3 of 17',
  'Printed in 1998 by Acme Press',
  'Use only as directed.',
  'Latitude 52.5200, longitude 13.40',
  'Pay within 30 days',
  'Pipeline stage 2 of 5 completed',
  'Email: info at example dot org',
  'Flight BA 2490 is delayed',
  'Subtotal 87.20; tax 6.98',
  'All rights reserved.',
  'Receipt #000981 - cash',
  'Dosage: 2 tablets every 8 hours',
  'Library card expires 2027',
  'New York, NY 10001',
  'Final score was 3-2 after extra time',
  'Capacity: 64 GB',
  'Small print matters, too.',
  'Delivery window: 8am to 12pm',
  'Run 17 finished in 4m 12s',
  'Exit only - no entry',
  'Memo: budget review on 5/6',
];

// Paragraph text for det pages.
const PARAGRAPHS = [
  'Quantization maps floating point weights to a small set of integer levels. '
  + 'A scale and a zero point per channel keep the error small for most layers.',
  'The committee met on 14 May 2024 to review the annual budget of 2.3 million. '
  + 'Members agreed to postpone the vote until the next quarterly meeting.',
  'Shipping is free for orders above 50 dollars. Returns are accepted within '
  + '30 days of delivery if the item is unused and in its original packaging.',
  'To reset the device, hold the power button for ten seconds, wait until the '
  + 'light blinks twice, then release it and connect the charger again.',
  'Results on the test set improved from 81.4 to 86.9 after the learning rate '
  + 'was lowered and the model was trained for another 40 epochs.',
  'Visitors must sign in at the front desk and wear their badge at all times. '
  + 'Lost badges should be reported to security on extension 4417.',
  'The museum is open from Tuesday to Sunday, 10:00 to 18:00, and stays open '
  + 'until 21:00 on the first Friday of each month.',
  'Chapter two explains how the data was collected, cleaned and split into '
  + 'training, validation and test sets of 70, 15 and 15 percent.',
];

const PAGES = [
  { w: 960, h: 640, font: FONTS[0], title: 'Quarterly Report 2024', body: 18, first: 0 },
  { w: 640, h: 640, font: FONTS[1], title: 'Customer Notice', body: 20, first: 2 },
  { w: 960, h: 640, font: FONTS[4], title: 'Experiment Log No. 17', body: 16, first: 4 },
  { w: 640, h: 960, font: FONTS[3], title: 'Museum Guide', body: 22, first: 6 },
];

// Line styles: [fg, bg]; mostly dark on white, some colored.
const STYLES = [
  ['#101010', '#ffffff'], ['#000000', '#ffffff'], ['#1a237e', '#ffffff'],
  ['#202020', '#f4f1e6'], ['#7f0000', '#ffffff'], ['#0b3d0b', '#eef6ee'],
];

function findConvert() {
  for (const c of ['magick', '/usr/bin/convert', 'convert']) {
    const r = spawnSync(c, ['-version'], { encoding: 'utf8' });
    if (r.status === 0 && /ImageMagick/.test(r.stdout)) return c;
  }
  return null;
}

function readPpm(buf) {
  // P6 header: magic, width, height, maxval, separated by whitespace (no comments from IM)
  let pos = 0; const tok = [];
  while (tok.length < 4) {
    while (/\s/.test(String.fromCharCode(buf[pos]))) pos++;
    let s = pos;
    while (!/\s/.test(String.fromCharCode(buf[pos]))) pos++;
    tok.push(buf.toString('latin1', s, pos));
  }
  pos++;
  if (tok[0] !== 'P6' || tok[3] !== '255') throw new Error(`unexpected PPM header ${tok.join(' ')}`);
  const w = Number(tok[1]); const h = Number(tok[2]);
  const rgb = new Uint8Array(buf.buffer.slice(buf.byteOffset + pos, buf.byteOffset + pos + w * h * 3));
  if (rgb.length !== w * h * 3) throw new Error('truncated PPM');
  return { w, h, rgb };
}

function writePpm(file, img) {
  fs.writeFileSync(file, Buffer.concat([Buffer.from(`P6\n${img.w} ${img.h}\n255\n`), Buffer.from(img.rgb)]));
}

function addNoise(img, seed, sigma) {
  const rand = mulberry32(seed);
  for (let i = 0; i < img.w * img.h; i++) {
    // approx. gaussian (sum of 3 uniforms), same offset on the 3 channels (gray noise)
    const n = Math.round((rand() + rand() + rand() - 1.5) * 2 * sigma);
    for (let c = 0; c < 3; c++) {
      const v = img.rgb[i * 3 + c] + n;
      img.rgb[i * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return img;
}

function runConvert(convert, args) {
  const r = spawnSync(convert, args, { maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    throw new Error(`${convert} ${args.join(' ')} failed: ${r.stderr ? r.stderr.toString() : r.error}`);
  }
  return r.stdout;
}

function wrap(text, maxChars) {
  const out = []; let cur = '';
  for (const word of text.split(' ')) {
    if (cur && (cur.length + 1 + word.length) > maxChars) { out.push(cur); cur = word; } else cur = cur ? `${cur} ${word}` : word;
  }
  if (cur) out.push(cur);
  return out;
}

function pageArgs(p) {
  const margin = 40;
  const args = ['-size', `${p.w}x${p.h}`, 'xc:white', '-font', p.font, '-fill', '#1c1c1c'];
  let y = margin + 30;
  args.push('-pointsize', '30', '-annotate', `+${margin}+${y}`, p.title);
  y += 20;
  // Paragraphs cycle from p.first until the page is full; every third one is in small print.
  for (let n = 0; ; n++) {
    const size = n % 3 === 2 ? p.body - 5 : p.body;
    const maxChars = Math.floor((p.w - 2 * margin) / (size * 0.52)); // ~average advance
    const lineH = Math.round(size * 1.55);
    y += Math.round(lineH * 0.6);
    if (y + lineH > p.h - margin) break;
    args.push('-pointsize', String(size));
    for (const line of wrap(PARAGRAPHS[(p.first + n) % PARAGRAPHS.length], maxChars)) {
      if (y + lineH > p.h - margin) break;
      y += lineH;
      args.push('-annotate', `+${margin}+${y}`, line);
    }
  }
  args.push('-depth', '8', 'ppm:-');
  return args;
}

function lineArgs(i) {
  const text = LINES[i];
  const font = FONTS[i % FONTS.length];
  const [fg, bg] = STYLES[i % STYLES.length];
  const pointsize = 28 + (i * 7) % 9; // ~32-40 px glyph height incl. ascender/descender
  return ['-background', bg, '-fill', fg, '-font', font, '-pointsize', String(pointsize),
    `label:${text}`, '-bordercolor', bg, '-border', `${10 + (i % 3) * 4}x${6 + (i % 4) * 2}`,
    '-depth', '8', 'ppm:-'];
}

function spec() {
  return { version: DATASET_VERSION, pages: PAGES.map(pageArgs), lines: LINES.map((_, i) => lineArgs(i)) };
}

function defaultCacheRoot() {
  const base = process.env.PQTOOL_CACHE || path.join(process.env.HOME || '/tmp', '.cache', 'pqtool');
  return path.join(base, 'fidelity');
}

// Renders (or reuses) the data set; returns {dir, pages:[{file}], lines:[{file,text}]}
function ensureDataset(cacheRoot, log) {
  const hash = crypto.createHash('sha256').update(JSON.stringify(spec())).digest('hex').slice(0, 12);
  const dir = path.join(cacheRoot || defaultCacheRoot(), `dataset-v${DATASET_VERSION}-${hash}`);
  const indexFile = path.join(dir, 'dataset.json');
  if (fs.existsSync(indexFile)) return JSON.parse(fs.readFileSync(indexFile, 'utf8'));

  const convert = findConvert();
  if (!convert) {
    const e = new Error('ImageMagick not found (install the Debian packages in tests/ort/APT_PACKAGES)');
    e.prerequisite = true;
    throw e;
  }
  for (const f of FONTS) {
    if (!fs.existsSync(f)) {
      const e = new Error(`font ${f} missing (install the Debian packages in tests/ort/APT_PACKAGES)`);
      e.prerequisite = true;
      throw e;
    }
  }
  if (log) log(`rendering data set into ${dir}`);
  const tmp = `${dir}.tmp${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  const index = { dir, pages: [], lines: [] };
  PAGES.forEach((p, k) => {
    const img = addNoise(readPpm(runConvert(convert, pageArgs(p))), 1000 + k, 6);
    const file = `page${k}.ppm`;
    writePpm(path.join(tmp, file), img);
    index.pages.push({ file: path.join(dir, file), w: img.w, h: img.h });
  });
  LINES.forEach((text, i) => {
    const img = addNoise(readPpm(runConvert(convert, lineArgs(i))), 2000 + i, 4);
    const file = `line${String(i).padStart(3, '0')}.ppm`;
    writePpm(path.join(tmp, file), img);
    index.lines.push({ file: path.join(dir, file), text, w: img.w, h: img.h });
  });
  fs.writeFileSync(path.join(tmp, 'dataset.json'), JSON.stringify(index, null, 1));
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  return index;
}

module.exports = { ensureDataset, readPpm, writePpm, defaultCacheRoot, LINES };

if (require.main === module) {
  const idx = ensureDataset(process.argv[2], (m) => process.stderr.write(`${m}\n`));
  console.log(idx.dir);
}
