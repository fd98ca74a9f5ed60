'use strict';
// Minimal read-only ONNX (protobuf) reader: enough to list graph inputs/outputs
// with their types and shapes, the opset imports, and where each initializer's
// data lies in the file (so test tools can patch bytes in place).
// No protobuf library: only the handful of fields used here are decoded.

const ELEM_TYPES = {
  1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32',
  7: 'int64', 8: 'string', 9: 'bool', 10: 'float16', 11: 'float64',
  12: 'uint32', 13: 'uint64', 16: 'bfloat16',
};

function readVarint(buf, pos) {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const b = buf[pos++];
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) break;
    shift += 7n;
  }
  return [result, pos];
}

// Iterates fields of a message in buf[start, end): yields {field, wire, value|start,end}
function* fields(buf, start, end) {
  let pos = start;
  while (pos < end) {
    let key;
    [key, pos] = readVarint(buf, pos);
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (wire === 0) {
      let v;
      [v, pos] = readVarint(buf, pos);
      yield { field, wire, value: v };
    } else if (wire === 1) {
      yield { field, wire, start: pos, end: pos + 8 };
      pos += 8;
    } else if (wire === 2) {
      let len;
      [len, pos] = readVarint(buf, pos);
      const s = pos;
      pos += Number(len);
      if (pos > end) throw new Error('truncated length-delimited field');
      yield { field, wire, start: s, end: pos };
    } else if (wire === 5) {
      yield { field, wire, start: pos, end: pos + 4 };
      pos += 4;
    } else {
      throw new Error(`unsupported wire type ${wire}`);
    }
  }
}

const str = (buf, f) => buf.toString('utf8', f.start, f.end);
const toSigned = (v) => Number(BigInt.asIntN(64, v));

function parseValueInfo(buf, s, e) {
  const vi = { name: '', dtype: null, dims: null };
  for (const f of fields(buf, s, e)) {
    if (f.field === 1 && f.wire === 2) vi.name = str(buf, f);
    else if (f.field === 2 && f.wire === 2) {
      for (const t of fields(buf, f.start, f.end)) {
        if (t.field !== 1 || t.wire !== 2) continue; // tensor_type only
        for (const tt of fields(buf, t.start, t.end)) {
          if (tt.field === 1 && tt.wire === 0) vi.dtype = ELEM_TYPES[Number(tt.value)] || `type${tt.value}`;
          else if (tt.field === 2 && tt.wire === 2) {
            vi.dims = [];
            for (const d of fields(buf, tt.start, tt.end)) {
              if (d.field !== 1 || d.wire !== 2) continue;
              let dim = null; // unknown
              for (const dd of fields(buf, d.start, d.end)) {
                if (dd.field === 1 && dd.wire === 0) dim = toSigned(dd.value);
                else if (dd.field === 2 && dd.wire === 2) dim = str(buf, dd);
              }
              vi.dims.push(dim);
            }
          }
        }
      }
    }
  }
  return vi;
}

function parseTensor(buf, s, e) {
  const t = { name: '', dtype: null, dims: [], raw: null, floatData: null, external: false };
  for (const f of fields(buf, s, e)) {
    if (f.field === 1) {
      if (f.wire === 0) t.dims.push(toSigned(f.value));
      else if (f.wire === 2) { // packed dims
        let p = f.start;
        while (p < f.end) { let v; [v, p] = readVarint(buf, p); t.dims.push(toSigned(v)); }
      }
    } else if (f.field === 2 && f.wire === 0) t.dtype = ELEM_TYPES[Number(f.value)] || `type${f.value}`;
    else if (f.field === 8 && f.wire === 2) t.name = str(buf, f);
    else if (f.field === 9 && f.wire === 2) t.raw = { offset: f.start, length: f.end - f.start };
    else if (f.field === 4 && f.wire === 2) t.floatData = { offset: f.start, length: f.end - f.start };
    else if (f.field === 14 && f.wire === 0 && f.value === 1n) t.external = true;
  }
  return t;
}

// {opType, inputs, outputs} of a node (attributes not decoded).
function parseNodeIo(buf, s, e) {
  const n = { opType: '', inputs: [], outputs: [] };
  for (const f of fields(buf, s, e)) {
    if (f.wire !== 2) continue;
    if (f.field === 1) n.inputs.push(str(buf, f));
    else if (f.field === 2) n.outputs.push(str(buf, f));
    else if (f.field === 4) n.opType = str(buf, f);
  }
  return n;
}

// Constant node (top-level graph only) with a tensor-valued 'value' attribute:
// returns the tensor, named after the node's output; else null.
function parseConstantNode(buf, s, e) {
  let opType = ''; let output = null; let tensor = null;
  for (const f of fields(buf, s, e)) {
    if (f.wire !== 2) continue;
    if (f.field === 4) opType = str(buf, f);
    else if (f.field === 2 && output === null) output = str(buf, f);
    else if (f.field === 5) {
      let aname = ''; let t = null;
      for (const a of fields(buf, f.start, f.end)) {
        if (a.field === 1 && a.wire === 2) aname = str(buf, a);
        else if (a.field === 5 && a.wire === 2) t = a;
      }
      if (aname === 'value' && t) tensor = parseTensor(buf, t.start, t.end);
    }
  }
  if (opType !== 'Constant' || !tensor) return null;
  tensor.name = output;
  return tensor;
}

// Returns {irVersion, opsets:{domain:version}, inputs, outputs, initializers, constants, nodes}
// (constants: tensors of top-level Constant nodes, as Paddle2ONNX exports weights)
// inputs excludes names that are also initializers (IR < 4 lists them as inputs).
function parseModel(buf) {
  const model = { irVersion: null, opsets: {}, inputs: [], outputs: [], initializers: [], constants: [], nodes: [] };
  let graph = null;
  for (const f of fields(buf, 0, buf.length)) {
    if (f.field === 1 && f.wire === 0) model.irVersion = Number(f.value);
    else if (f.field === 8 && f.wire === 2) {
      let domain = ''; let version = null;
      for (const o of fields(buf, f.start, f.end)) {
        if (o.field === 1 && o.wire === 2) domain = str(buf, o);
        else if (o.field === 2 && o.wire === 0) version = Number(o.value);
      }
      model.opsets[domain] = version;
    } else if (f.field === 7 && f.wire === 2) graph = f;
  }
  if (!graph) throw new Error('no graph in model');
  const allInputs = [];
  for (const f of fields(buf, graph.start, graph.end)) {
    if (f.wire !== 2) continue;
    if (f.field === 11) allInputs.push(parseValueInfo(buf, f.start, f.end));
    else if (f.field === 12) model.outputs.push(parseValueInfo(buf, f.start, f.end));
    else if (f.field === 5) model.initializers.push(parseTensor(buf, f.start, f.end));
    else if (f.field === 1) {
      model.nodes.push(parseNodeIo(buf, f.start, f.end));
      const c = parseConstantNode(buf, f.start, f.end);
      if (c) model.constants.push(c);
    }
  }
  const initNames = new Set(model.initializers.map((t) => t.name));
  model.inputs = allInputs.filter((i) => !initNames.has(i.name));
  return model;
}

module.exports = { parseModel, ELEM_TYPES };

if (require.main === module) {
  const m = parseModel(require('fs').readFileSync(process.argv[2]));
  const fmt = (v) => `${v.name}: ${v.dtype} [${(v.dims || []).map((d) => (d === null ? '?' : d)).join(',')}]`;
  console.log(`ir_version ${m.irVersion} opsets ${JSON.stringify(m.opsets)}`);
  for (const i of m.inputs) console.log(`input  ${fmt(i)}`);
  for (const o of m.outputs) console.log(`output ${fmt(o)}`);
  const count = (ts) => ts.reduce((n, t) => n + t.dims.reduce((a, b) => a * b, 1), 0);
  console.log(`initializers ${m.initializers.length} (${count(m.initializers)} elements)`);
  console.log(`constant nodes ${m.constants.length} (${count(m.constants)} elements)`);
}
