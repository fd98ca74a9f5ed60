'use strict';
// PaddleOCR-style pre/post-processing for the PP-OCR det, rec and cls models,
// and the metrics used to compare an original and a quantized model.

const fs = require('fs');

// Bilinear resize of interleaved 8-bit RGB, like cv2.resize INTER_LINEAR
// (half-pixel centres, no antialiasing, result rounded to uint8).
function resizeBilinear(img, dw, dh) {
  const { w: sw, h: sh, rgb } = img;
  if (sw === dw && sh === dh) return img;
  const out = new Uint8Array(dw * dh * 3);
  const sx = sw / dw; const sy = sh / dh;
  const x0s = new Int32Array(dw); const x1s = new Int32Array(dw); const fxs = new Float64Array(dw);
  for (let x = 0; x < dw; x++) {
    let fx = (x + 0.5) * sx - 0.5;
    let x0 = Math.floor(fx); fx -= x0;
    if (x0 < 0) { x0 = 0; fx = 0; }
    if (x0 >= sw - 1) { x0 = sw - 1; fx = 0; }
    x0s[x] = x0; x1s[x] = Math.min(x0 + 1, sw - 1); fxs[x] = fx;
  }
  for (let y = 0; y < dh; y++) {
    let fy = (y + 0.5) * sy - 0.5;
    let y0 = Math.floor(fy); fy -= y0;
    if (y0 < 0) { y0 = 0; fy = 0; }
    if (y0 >= sh - 1) { y0 = sh - 1; fy = 0; }
    const y1 = Math.min(y0 + 1, sh - 1);
    for (let x = 0; x < dw; x++) {
      const fx = fxs[x];
      const a = (y0 * sw + x0s[x]) * 3; const b = (y0 * sw + x1s[x]) * 3;
      const c = (y1 * sw + x0s[x]) * 3; const d = (y1 * sw + x1s[x]) * 3;
      for (let ch = 0; ch < 3; ch++) {
        const top = rgb[a + ch] + (rgb[b + ch] - rgb[a + ch]) * fx;
        const bot = rgb[c + ch] + (rgb[d + ch] - rgb[c + ch]) * fx;
        out[(y * dw + x) * 3 + ch] = Math.round(top + (bot - top) * fy);
      }
    }
  }
  return { w: dw, h: dh, rgb: out };
}

function rotate180(img) {
  const n = img.w * img.h; const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) out[(n - 1 - i) * 3 + c] = img.rgb[i * 3 + c];
  return { w: img.w, h: img.h, rgb: out };
}

// NCHW float32 from 8-bit RGB. channelOrder 'bgr' puts B in plane 0 (as cv2.imread does);
// mean/std are given per plane, in plane order. Width padded with zeros to padW.
function toNchw(img, mean, std, channelOrder, padW) {
  const W = padW || img.w; const H = img.h;
  const out = new Float32Array(3 * H * W);
  const src = channelOrder === 'bgr' ? [2, 1, 0] : [0, 1, 2];
  for (let p = 0; p < 3; p++) {
    const m = mean[p]; const s = std[p]; const c = src[p];
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < img.w; x++) {
        out[(p * H + y) * W + x] = (img.rgb[(y * img.w + x) * 3 + c] / 255 - m) / s;
      }
    }
  }
  return { data: out, dims: [1, 3, H, W] };
}

// det (DetResizeForTest limit_type 'max', limit_side_len 960; NormalizeImage ImageNet)
function detInput(img, channelOrder, limitSide = 960) {
  let ratio = 1;
  if (Math.max(img.w, img.h) > limitSide) ratio = limitSide / Math.max(img.w, img.h);
  const rw = Math.max(32, Math.round((img.w * ratio) / 32) * 32);
  const rh = Math.max(32, Math.round((img.h * ratio) / 32) * 32);
  return toNchw(resizeBilinear(img, rw, rh), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], channelOrder);
}

// rec (predict_rec resize_norm_img for one image: imgW = 48*max(320/48, w/h), optional cap)
function recInput(img, channelOrder, maxWidth) {
  const H = 48;
  const ratio = img.w / img.h;
  let imgW = Math.floor(H * Math.max(320 / 48, ratio));
  if (maxWidth) imgW = Math.min(imgW, maxWidth);
  const rw = Math.min(imgW, Math.ceil(H * ratio));
  return toNchw(resizeBilinear(img, rw, H), [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], channelOrder, imgW);
}

// cls (predict_cls: cls_image_shape 3,48,192)
function clsInput(img, channelOrder) {
  const H = 48; const W = 192;
  const rw = Math.min(W, Math.ceil(H * (img.w / img.h)));
  return toNchw(resizeBilinear(img, rw, H), [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], channelOrder, W);
}

// Character list: index 0 blank, i>=1 -> line i-1 of the keys file, last -> ' '.
function loadCharset(keysFile) {
  const keys = fs.readFileSync(keysFile, 'utf8').split('\n').map((l) => l.replace(/\r$/, ''));
  if (keys.length && keys[keys.length - 1] === '') keys.pop();
  return ['<blank>', ...keys, ' '];
}

// CTC greedy decode of probs [T, C] (flat Float32Array).
function ctcDecode(probs, T, C, charset) {
  let out = ''; let prev = -1; let confSum = 0; let n = 0;
  for (let t = 0; t < T; t++) {
    let best = 0; let bv = -Infinity;
    const base = t * C;
    for (let c = 0; c < C; c++) { const v = probs[base + c]; if (v > bv) { bv = v; best = c; } }
    if (best !== 0 && best !== prev) {
      out += best < charset.length ? charset[best] : '?';
      confSum += bv; n++;
    }
    prev = best;
  }
  return { text: out, conf: n ? confSum / n : 0 };
}

function editDistance(a, b) {
  const s = Array.from(a); const t = Array.from(b);
  let prev = new Array(t.length + 1); let cur = new Array(t.length + 1);
  for (let j = 0; j <= t.length; j++) prev[j] = j;
  for (let i = 1; i <= s.length; i++) {
    cur[0] = i;
    for (let j = 1; j <= t.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (s[i - 1] === t[j - 1] ? 0 : 1));
    }
    [prev, cur] = [cur, prev];
  }
  return prev[t.length];
}

// Accumulates Σy² and Σ(y-ŷ)² for SQNR.
class Sqnr {
  constructor() { this.signal = 0; this.noise = 0; }

  add(ref, test) {
    if (ref.length !== test.length) throw new Error(`output sizes differ: ${ref.length} vs ${test.length}`);
    for (let i = 0; i < ref.length; i++) { const d = ref[i] - test[i]; this.signal += ref[i] * ref[i]; this.noise += d * d; }
  }

  // dB; capped at 200 when outputs are identical (keeps the JSON finite)
  db() { return this.noise === 0 ? 200 : Math.min(200, 10 * Math.log10(this.signal / this.noise)); }
}

module.exports = {
  resizeBilinear, rotate180, toNchw, detInput, recInput, clsInput, loadCharset, ctcDecode, editDistance, Sqnr,
};
